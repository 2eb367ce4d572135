//! How the text log line writes fields: as tracing-subscriber's default does
//! (`name=value`, strings quoted, the message bare), but without the spans'
//! OpenTelemetry attributes — every dotted name (`otel.kind`, `rpc.method`,
//! `db.system`, `server.address`…), which are for traces. The fmt layer
//! formats a span's fields when the span is made, whether or not a line is
//! ever written inside it, and a call makes a span per round trip: those
//! attributes would cost every call their formatting for nothing. The JSON
//! format names the span alone and writes no span fields either.
use std::fmt;

use tracing::field::{Field, Visit};
use tracing::span;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormattedFields;
use tracing_subscriber::fmt::format::{FormatFields, Writer};

/// The field formatter of the log layer (`fmt::layer().fmt_fields(LogFields)`).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogFields;

impl<'w> FormatFields<'w> for LogFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = FieldWriter { writer, seen: false, result: Ok(()) };
        fields.record(&mut visitor);
        visitor.result
    }

    /// A field recorded on a span later (`merchant`, the status code) is
    /// appended after a space only if it is written at all.
    fn add_fields(&self, current: &'w mut FormattedFields<Self>, fields: &span::Record<'_>) -> fmt::Result {
        let seen = !current.fields.is_empty();
        let mut visitor = FieldWriter { writer: current.as_writer(), seen, result: Ok(()) };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Writes one span's or event's fields, space-separated.
pub struct FieldWriter<'w> {
    writer: Writer<'w>,
    seen: bool,
    result: fmt::Result,
}

impl FieldWriter<'_> {
    fn write(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        let name = field.name();
        if self.result.is_err() || name.contains('.') {
            return;
        }
        let gap = if self.seen { " " } else { "" };
        self.seen = true;
        self.result = if name == "message" {
            write!(self.writer, "{gap}{value}")
        } else {
            write!(self.writer, "{gap}{name}={value}")
        };
    }
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write(field, format_args!("{value}"));
        } else {
            self.write(field, format_args!("{value:?}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, format_args!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::prelude::*;

    use super::LogFields;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().map_err(|_| io::Error::other("poisoned"))?.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_keeps_its_fields_and_drops_the_spans_attributes() {
        let lines = Lines::default();
        let writer = lines.clone();
        let layer = tracing_subscriber::fmt::layer()
            .fmt_fields(LogFields)
            .with_ansi(false)
            .without_time()
            .with_writer(move || writer.clone());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "grpc.server",
                otel.kind = "server",
                rpc.method = "CreateToken",
                rpc.grpc.status_code = tracing::field::Empty,
                merchant = tracing::field::Empty
            );
            span.record("merchant", "mrch_1");
            span.record("rpc.grpc.status_code", 0);
            let _entered = span.enter();
            tracing::info!(method = "/payvault.vault.v1.Tokens/CreateToken", code = 0, "call");
        });
        let text = String::from_utf8(lines.0.lock().map(|l| l.clone()).unwrap_or_default()).unwrap_or_default();
        assert!(text.contains("grpc.server{merchant=\"mrch_1\"}"), "{text}");
        assert!(text.contains("call method=\"/payvault.vault.v1.Tokens/CreateToken\" code=0"), "{text}");
        assert!(!text.contains("otel.kind") && !text.contains("rpc.method"), "{text}");
    }
}
