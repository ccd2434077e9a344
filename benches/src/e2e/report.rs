//! The printed report, laid out like etcd's benchmark tool: a header naming
//! the server and the workload, then per transport (its median round) the
//! summary, a response-time histogram and the latency distribution, then a
//! comparison table of every transport against the `raw` baseline.
//!
//! Times are in milliseconds (the total in seconds), CPU in microseconds per
//! request. The comparison marks a transport below 0.9× the baseline's
//! requests/second or above 1.5× its client CPU per request.

use std::io::{self, Write};
use std::time::Duration;

use super::latency::REPORT_PERCENTILES;
use super::runner::{Measurement, Report, TransportResult};
use super::transport::TransportKind;

/// Below this fraction of the baseline's requests/second a transport is marked.
pub const SLOW_RATIO: f64 = 0.9;
/// Above this multiple of the baseline's client CPU per request a transport is marked.
pub const CPU_RATIO: f64 = 1.5;

/// Bars of the histogram are at most this long.
const BAR_WIDTH: usize = 40;

/// Writes the whole report.
pub fn write_report(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    write_header(out, report)?;
    for result in &report.results {
        writeln!(out)?;
        write_transport(out, result, report.options.rounds)?;
    }
    writeln!(out)?;
    write_comparison(out, report)
}

/// The lines naming the server, the workload and the clocks.
pub fn write_header(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    let o = &report.options;
    let server = match report.server_pid {
        Some(pid) => format!("throwaway server, pid {pid}"),
        None => "given endpoints".to_owned(),
    };
    writeln!(
        out,
        "etcd-bench: etcd {} at {} ({server})",
        report.etcd_version,
        report.endpoints.join(",")
    )?;
    writeln!(
        out,
        "workload: {}, clients: {}, total: {} requests per run, key size: {} ({} distinct keys under {}), value size: {}",
        o.workload, o.clients, o.total, report.key_size, o.key_space, report.prefix, o.val_size
    )?;
    writeln!(
        out,
        "rounds: {} (transports interleaved; median round by req/s reported), warm-up: {} requests before each run",
        o.rounds, o.warmup
    )?;
    write!(out, "client CPU: {}", report.client_clock)?;
    if let Some(clock) = &report.server_clock {
        write!(out, "; server CPU: {clock}")?;
        if let Some(idle) = report.server_idle_us_per_sec {
            write!(out, ", {idle:.0} µs/s while idle")?;
        }
    }
    writeln!(out)?;
    Ok(())
}

/// One transport's median round, as etcd's benchmark prints a run.
pub fn write_transport(
    out: &mut dyn Write,
    result: &TransportResult,
    rounds: usize,
) -> io::Result<()> {
    let m = result.median();
    let all: Vec<String> = result
        .rounds
        .iter()
        .map(|r| group(r.requests_per_sec()))
        .collect();
    writeln!(
        out,
        "=== {} (round {} of {rounds}; req/s of every round: {}) ===",
        result.kind,
        m.round + 1,
        all.join(", ")
    )?;
    let l = &m.latencies;
    writeln!(out, "Summary:")?;
    writeln!(out, "  Total:\t{:.4} secs.", m.wall.as_secs_f64())?;
    writeln!(out, "  Slowest:\t{} ms.", ms(l.slowest()))?;
    writeln!(out, "  Fastest:\t{} ms.", ms(l.fastest()))?;
    writeln!(out, "  Average:\t{} ms.", ms(l.average()))?;
    writeln!(out, "  Stddev:\t{} ms.", ms(l.stddev()))?;
    writeln!(out, "  Requests/sec:\t{:.1}", m.requests_per_sec())?;
    writeln!(out, "  Client CPU:\t{:.1} µs/op", m.client_cpu_us_per_op())?;
    if let Some(us) = m.server_cpu_us_per_op() {
        writeln!(out, "  Server CPU:\t{us:.1} µs/op")?;
    }
    if m.errors.count > 0 {
        writeln!(
            out,
            "  Errors:\t{} (first: {})",
            m.errors.count,
            m.errors.first.as_deref().unwrap_or("?")
        )?;
    }
    writeln!(out)?;
    writeln!(out, "Response time histogram:")?;
    let histogram = l.histogram(10);
    let max = histogram.iter().map(|b| b.count).max().unwrap_or(0).max(1);
    for b in &histogram {
        let bar = "∎".repeat((b.count * BAR_WIDTH).div_ceil(max).min(BAR_WIDTH));
        writeln!(out, "  {} ms [{}]\t|{bar}", ms(b.upper), b.count)?;
    }
    writeln!(out)?;
    writeln!(out, "Latency distribution:")?;
    for p in REPORT_PERCENTILES {
        writeln!(out, "  {p}% in {} ms.", ms(l.percentile(p)))?;
    }
    Ok(())
}

/// The table of every transport's median round against `raw`'s.
pub fn write_comparison(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    let raw: Option<&Measurement> = report
        .results
        .iter()
        .find(|r| r.kind == TransportKind::Raw)
        .map(TransportResult::median);
    let o = &report.options;
    writeln!(
        out,
        "=== Comparison: {} × {}, clients {}, median of {} rounds ===",
        o.workload, o.total, o.clients, o.rounds
    )?;
    writeln!(
        out,
        "| transport | req/s | ratio to raw | client CPU µs/op | ratio to raw | server CPU µs/op |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|")?;
    let mut notes = Vec::new();
    for result in &report.results {
        let m = result.median();
        let rps = m.requests_per_sec();
        let cpu = m.client_cpu_us_per_op();
        let rps_ratio = raw.map(|r| rps / r.requests_per_sec());
        let cpu_ratio = raw.map(|r| cpu / r.client_cpu_us_per_op());
        let server = m
            .server_cpu_us_per_op()
            .map_or("-".to_owned(), |us| format!("{us:.1}"));
        writeln!(
            out,
            "| {} | {} | {} | {cpu:.1} | {} | {server} |",
            result.kind,
            group(rps),
            ratio(rps_ratio),
            ratio(cpu_ratio),
        )?;
        if rps_ratio.is_some_and(|r| r < SLOW_RATIO) {
            notes.push(format!(
                "{}: below {SLOW_RATIO}× raw requests/second",
                result.kind
            ));
        }
        if cpu_ratio.is_some_and(|r| r > CPU_RATIO) {
            notes.push(format!(
                "{}: above {CPU_RATIO}× raw client CPU per request",
                result.kind
            ));
        }
        if m.errors.count > 0 {
            notes.push(format!(
                "{}: {} failed requests",
                result.kind, m.errors.count
            ));
        }
    }
    for note in notes {
        writeln!(out, "note: {note}")?;
    }
    if report.server_clock.is_some() {
        writeln!(
            out,
            "note: server CPU per request includes the server's cost of going idle and waking \
             up between requests, so it rises when the client leaves longer gaps between them"
        )?;
    }
    Ok(())
}

/// Milliseconds with 4 decimals, as etcd prints seconds.
fn ms(d: Duration) -> String {
    format!("{:.4}", d.as_secs_f64() * 1000.0)
}

fn ratio(r: Option<f64>) -> String {
    r.map_or("-".to_owned(), |r| format!("{r:.2}×"))
}

/// A whole number with thousands separators: `22,167`.
pub fn group(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e2e::args::Options;
    use crate::e2e::latency::Latencies;
    use crate::e2e::runner::Measurement;
    use crate::e2e::transport::Errors;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group(0.0), "0");
        assert_eq!(group(999.4), "999");
        assert_eq!(group(4404.0), "4,404");
        assert_eq!(group(1_234_567.0), "1,234,567");
    }

    fn run(round: usize, rps: u64, cpu_us: u64) -> Measurement {
        let requests = 1000;
        Measurement {
            round,
            requests,
            wall: Duration::from_secs_f64(requests as f64 / rps as f64),
            latencies: Latencies::from_durations((1..=1000).map(Duration::from_micros)),
            client_cpu: Duration::from_micros(cpu_us * requests as u64),
            server_cpu: Some(Duration::from_micros(100 * requests as u64)),
            errors: Errors::default(),
        }
    }

    #[test]
    fn report_has_every_section_and_flags_slow_clients() {
        let report = Report {
            options: Options::default(),
            endpoints: vec!["http://127.0.0.1:2379".into()],
            server_pid: Some(42),
            etcd_version: "3.4.23".into(),
            prefix: "/bxxxxxx".into(),
            key_size: 16,
            client_clock: "clock".into(),
            server_clock: Some("clock 42".into()),
            server_idle_us_per_sec: Some(1500.0),
            results: vec![
                TransportResult {
                    kind: TransportKind::Raw,
                    rounds: vec![run(0, 4000, 20), run(1, 5000, 20), run(2, 4500, 20)],
                },
                TransportResult {
                    kind: TransportKind::Blocking,
                    rounds: vec![run(0, 3000, 40), run(1, 3400, 40), run(2, 3500, 40)],
                },
            ],
        };
        let mut out = Vec::new();
        write_report(&mut out, &report).unwrap();
        let text = String::from_utf8(out).unwrap();
        for needle in [
            "etcd-bench: etcd 3.4.23 at http://127.0.0.1:2379 (throwaway server, pid 42)",
            "=== raw (round 3 of 3; req/s of every round: 4,000, 5,000, 4,500) ===",
            "  Requests/sec:\t4500.0",
            "  Client CPU:\t20.0 µs/op",
            "  Server CPU:\t100.0 µs/op",
            "  99.9% in 0.9990 ms.",
            "Response time histogram:",
            "| raw | 4,500 | 1.00× | 20.0 | 1.00× | 100.0 |",
            "| blocking | 3,400 | 0.76× | 40.0 | 2.00× | 100.0 |",
            "note: blocking: below 0.9× raw requests/second",
            "note: blocking: above 1.5× raw client CPU per request",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }
}
