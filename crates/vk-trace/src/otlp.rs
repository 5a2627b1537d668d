//! The OTLP span exporter and the tracing layer feeding it.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::registry::LookupSpan;

use crate::{OtlpConfig, OtlpProtocol, TraceError};

/// Crates whose spans are never exported: the exporter's own transport would otherwise
/// trace itself.
const QUIET: [&str; 8] = [
    "h2",
    "hyper",
    "hyper_util",
    "tonic",
    "tower",
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
];

pub(crate) fn layer<S>(
    config: &OtlpConfig,
    service: &str,
) -> Result<(Box<dyn Layer<S> + Send + Sync>, SdkTracerProvider), TraceError>
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let url = config.traces_url();
    let failed = |e: &dyn std::fmt::Display| TraceError::BuildExporter {
        endpoint: url.clone(),
        reason: e.to_string(),
    };
    let exporter = match config.protocol {
        OtlpProtocol::Grpc => {
            let mut metadata = tonic::metadata::MetadataMap::new();
            for (k, v) in &config.headers {
                let key = tonic::metadata::MetadataKey::from_bytes(k.as_bytes())
                    .map_err(|e| failed(&e))?;
                let value = v.parse().map_err(|e| failed(&e))?;
                metadata.insert(key, value);
            }
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(url.clone())
                .with_metadata(metadata)
                .build()
        }
        OtlpProtocol::HttpProtobuf | OtlpProtocol::HttpJson => {
            let protocol = if config.protocol == OtlpProtocol::HttpJson {
                opentelemetry_otlp::Protocol::HttpJson
            } else {
                opentelemetry_otlp::Protocol::HttpBinary
            };
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(url.clone())
                .with_protocol(protocol)
                .with_headers(config.headers.clone().into_iter().collect())
                .build()
        }
    }
    .map_err(|e| failed(&e))?;
    let processor =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sample_ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let tracer = provider.tracer(service.to_owned());
    let quiet = QUIET
        .iter()
        .fold(Targets::new().with_default(LevelFilter::TRACE), |t, c| {
            t.with_target(*c, LevelFilter::OFF)
        });
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(quiet)
        .boxed();
    Ok((layer, provider))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(protocol: OtlpProtocol, header: (&str, &str)) -> OtlpConfig {
        OtlpConfig {
            endpoint: "http://127.0.0.1:4318".into(),
            protocol,
            headers: [(header.0.to_owned(), header.1.to_owned())].into(),
            sample_ratio: 0.5,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_protocol_builds_and_shuts_down() {
        for protocol in [
            OtlpProtocol::Grpc,
            OtlpProtocol::HttpProtobuf,
            OtlpProtocol::HttpJson,
        ] {
            let (_layer, provider) =
                layer::<tracing_subscriber::Registry>(&config(protocol, ("api-key", "k")), "t")
                    .unwrap_or_else(|e| panic!("{protocol:?}: {e}"));
            // Nothing was recorded: the flush has nothing to send.
            tokio::task::spawn_blocking(move || provider.shutdown())
                .await
                .expect("join")
                .expect("shutdown");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_invalid_grpc_header_names_the_endpoint() {
        let Err(e) = layer::<tracing_subscriber::Registry>(
            &config(OtlpProtocol::Grpc, ("bad key", "v")),
            "t",
        ) else {
            panic!("a header name with a space must be refused");
        };
        assert!(e.to_string().contains("http://127.0.0.1:4318"), "{e}");
    }
}
