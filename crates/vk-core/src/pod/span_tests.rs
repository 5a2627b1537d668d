//! The spans of a pod sync, as a subscriber sees them: names, fields, parent/child.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata};
use tracing_core::span::Current;

use super::FeedEvent;
use super::tests::{controller, key, pod};
use crate::trace_fields as f;

/// One span as recorded.
#[derive(Debug)]
struct Recorded {
    meta: &'static Metadata<'static>,
    parent: Option<u64>,
    fields: BTreeMap<String, String>,
}

/// A subscriber recording spans; for single-threaded tests.
#[derive(Default)]
struct Capture {
    spans: Mutex<Vec<Recorded>>,
    stack: Mutex<Vec<u64>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let parent = if attrs.is_contextual() {
            self.stack.lock().expect("stack").last().copied()
        } else {
            attrs.parent().map(Id::into_u64)
        };
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut spans = self.spans.lock().expect("spans");
        spans.push(Recorded {
            meta: attrs.metadata(),
            parent,
            fields,
        });
        Id::from_u64(spans.len() as u64)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut spans = self.spans.lock().expect("spans");
        let index = usize::try_from(span.into_u64() - 1).expect("index");
        values.record(&mut Fields(&mut spans[index].fields));
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, span: &Id) {
        self.stack.lock().expect("stack").push(span.into_u64());
    }
    fn exit(&self, _: &Id) {
        self.stack.lock().expect("stack").pop();
    }
    fn current_span(&self) -> Current {
        let stack = self.stack.lock().expect("stack");
        match stack.last() {
            Some(id) => {
                let spans = self.spans.lock().expect("spans");
                let meta = spans[usize::try_from(*id - 1).expect("index")].meta;
                Current::new(Id::from_u64(*id), meta)
            }
            None => Current::none(),
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_sync_and_its_provider_call_are_nested_spans_with_the_documented_fields() {
    let capture = std::sync::Arc::new(Capture::default());
    let _guard = tracing::dispatcher::set_default(&tracing::Dispatch::from(capture.clone()));
    let c = controller();
    let s = &c.shared;
    s.apply_feed(FeedEvent::Apply(Box::new(pod("a", "u1", "Running"))));
    if let Some(e) = s.lock_entries().get_mut(&key("a")) {
        e.spec_sent(1);
    }
    s.apply_feed(FeedEvent::Delete(Box::new(pod("a", "u1", "Running"))));
    s.process(key("a")).await;

    let spans = capture.spans.lock().expect("spans");
    let (sync_id, sync) = spans
        .iter()
        .enumerate()
        .find(|(_, r)| r.meta.name() == f::POD_SYNC)
        .expect("pod.sync span");
    assert_eq!(*sync.meta.level(), tracing::Level::INFO);
    let field = |r: &Recorded, name: &str| r.fields.get(name).cloned().unwrap_or_default();
    assert_eq!(field(sync, f::POD_NAMESPACE), "ns");
    assert_eq!(field(sync, f::POD_NAME), "a");
    assert_eq!(field(sync, f::POD_UID), "u1");
    assert_eq!(field(sync, f::NODE_NAME), "n1");
    assert_eq!(field(sync, f::OPERATION), "delete");
    assert_eq!(field(sync, f::RESULT), "retry");
    let call = spans
        .iter()
        .find(|r| r.meta.name() == f::PROVIDER_DELETE_POD)
        .expect("provider.delete_pod span");
    assert_eq!(call.parent, Some(sync_id as u64 + 1), "child of pod.sync");
    for (name, want) in [
        (f::POD_NAMESPACE, "ns"),
        (f::POD_NAME, "a"),
        (f::POD_UID, "u1"),
        (f::NODE_NAME, "n1"),
        (f::ERROR_KIND, "unavailable"),
    ] {
        assert_eq!(field(call, name), want, "{name}");
    }
    // Every documented field exists in the span's metadata (so `record` lands).
    for name in [
        f::POD_NAMESPACE,
        f::POD_NAME,
        f::POD_UID,
        f::NODE_NAME,
        f::OPERATION,
        f::RESULT,
    ] {
        assert!(sync.meta.fields().field(name).is_some(), "{name}");
    }
}
