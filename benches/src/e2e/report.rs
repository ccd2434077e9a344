//! The printed report, laid out like etcd's benchmark tool: a header naming
//! the server and the workloads, then per case (workload and client count)
//! and per transport (its median round) the summary, a response-time
//! histogram and the latency distribution, then one comparison table of
//! every case and transport against the `raw` baseline of the same case.
//!
//! Times are in milliseconds (the total in seconds), CPU in microseconds per
//! request. The comparison marks a client below 0.9× the baseline's
//! requests/second or above 1.5× its client CPU per request (the bare-stack
//! floors `ureq` and `hyper` are listed, never marked).

use std::io::{self, Write};
use std::time::Duration;

use super::latency::REPORT_PERCENTILES;
use super::runner::{CaseResult, Measurement, Report, TransportResult};
use super::transport::Lane;

/// Below this fraction of the baseline's requests/second a transport is marked.
pub const SLOW_RATIO: f64 = 0.9;
/// Above this multiple of the baseline's client CPU per request a transport is marked.
pub const CPU_RATIO: f64 = 1.5;

/// Bars of the histogram are at most this long.
const BAR_WIDTH: usize = 40;

/// Writes the whole report.
pub fn write_report(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    write_header(out, report)?;
    for case in &report.cases {
        writeln!(out)?;
        writeln!(
            out,
            "######## {}, {} in flight ########",
            case.workload, case.clients
        )?;
        for result in &case.results {
            writeln!(out)?;
            write_transport(out, result, report.options.rounds)?;
        }
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
    let tls = if report.tls_endpoints.is_empty() {
        String::new()
    } else {
        format!(" and {} (TLS)", report.tls_endpoints.join(","))
    };
    writeln!(
        out,
        "etcd-bench: etcd {} at {}{tls} ({server})",
        report.etcd_version,
        report.endpoints.join(",")
    )?;
    let workloads: Vec<&str> = o.workloads.iter().map(|w| w.name()).collect();
    let clients: Vec<String> = o.clients.iter().map(usize::to_string).collect();
    writeln!(
        out,
        "workloads: {}, clients: {}, total: {} requests per run, key size: {} ({} distinct keys under {}), value size: {}",
        workloads.join(","),
        clients.join(","),
        o.total,
        report.key_size,
        o.key_space,
        report.prefix,
        o.val_size
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
        result.lane,
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

/// The table of every case's transports (their median rounds) against the
/// `raw` baseline of the same case.
pub fn write_comparison(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    let o = &report.options;
    writeln!(
        out,
        "=== Comparison: {} requests per run, median of {} rounds; times in ms, CPU in µs/op, ratios to raw of the same case (over TLS: to raw+tls) ===",
        o.total, o.rounds
    )?;
    writeln!(
        out,
        "| workload | clients | transport | req/s | ratio to raw | average | stddev | p50 | p90 | p99 | p99.9 | client CPU | ratio to raw | server CPU |"
    )?;
    writeln!(
        out,
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )?;
    let mut notes = Vec::new();
    for case in &report.cases {
        write_case_rows(out, case, &mut notes)?;
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
    if !report.tls_endpoints.is_empty() {
        writeln!(out)?;
        write_tls_cost(out, report)?;
    }
    Ok(())
}

/// The table of what TLS costs each transport: its TLS lane against its
/// plain one, in the same case.
pub fn write_tls_cost(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    writeln!(
        out,
        "=== TLS against plain HTTP: each transport's TLS lane against its plain lane, same case and rounds ==="
    )?;
    writeln!(
        out,
        "| workload | clients | transport | req/s plain | req/s tls | tls/plain | p50 plain | p50 tls | client CPU plain | client CPU tls | server CPU plain | server CPU tls |"
    )?;
    writeln!(
        out,
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )?;
    let server = |m: &Measurement| {
        m.server_cpu_us_per_op()
            .map_or("-".to_owned(), |us| format!("{us:.1}"))
    };
    for case in &report.cases {
        for result in case.results.iter().filter(|r| !r.lane.tls) {
            let tls = Lane {
                tls: true,
                ..result.lane
            };
            let (Some(plain), Some(secure)) = (case.lane(result.lane), case.lane(tls)) else {
                continue;
            };
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {} | {} |",
                case.workload,
                case.clients,
                result.lane.kind,
                group(plain.requests_per_sec()),
                group(secure.requests_per_sec()),
                ratio(Some(secure.requests_per_sec() / plain.requests_per_sec())),
                ms3(plain.latencies.percentile(50.0)),
                ms3(secure.latencies.percentile(50.0)),
                plain.client_cpu_us_per_op(),
                secure.client_cpu_us_per_op(),
                server(plain),
                server(secure),
            )?;
        }
    }
    writeln!(
        out,
        "note: every lane keeps its connections from the warm-up on, so the TLS handshakes are paid \
         before the measured runs; what remains is record encryption and decryption on both sides"
    )
}

/// One case's rows of the comparison table; the marks go to `notes`.
fn write_case_rows(
    out: &mut dyn Write,
    case: &CaseResult,
    notes: &mut Vec<String>,
) -> io::Result<()> {
    for result in &case.results {
        let raw = case.baseline(result.lane.tls);
        let m = result.median();
        let l = &m.latencies;
        let rps = m.requests_per_sec();
        let cpu = m.client_cpu_us_per_op();
        let rps_ratio = raw.map(|r| rps / r.requests_per_sec());
        let cpu_ratio = raw.map(|r| cpu / r.client_cpu_us_per_op());
        let server = m
            .server_cpu_us_per_op()
            .map_or("-".to_owned(), |us| format!("{us:.1}"));
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {cpu:.1} | {} | {server} |",
            case.workload,
            case.clients,
            result.lane,
            group(rps),
            ratio(rps_ratio),
            ms3(l.average()),
            ms3(l.stddev()),
            ms3(l.percentile(50.0)),
            ms3(l.percentile(90.0)),
            ms3(l.percentile(99.0)),
            ms3(l.percentile(99.9)),
            ratio(cpu_ratio),
        )?;
        let who = format!("{} ×{} {}", case.workload, case.clients, result.lane);
        // The targets are the clients'; a baseline's figures are what they are.
        let targeted = result.lane.kind.is_client();
        if targeted && rps_ratio.is_some_and(|r| r < SLOW_RATIO) {
            notes.push(format!("{who}: below {SLOW_RATIO}× raw requests/second"));
        }
        if targeted && cpu_ratio.is_some_and(|r| r > CPU_RATIO) {
            notes.push(format!(
                "{who}: above {CPU_RATIO}× raw client CPU per request"
            ));
        }
        if m.errors.count > 0 {
            notes.push(format!("{who}: {} failed requests", m.errors.count));
        }
    }
    Ok(())
}

/// Milliseconds with 3 decimals, for the comparison table.
fn ms3(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
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
    use crate::e2e::transport::{Errors, TransportKind};
    use crate::e2e::workload::Workload;

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
            tls_endpoints: Vec::new(),
            server_pid: Some(42),
            etcd_version: "3.4.23".into(),
            prefix: "/bxxxxxx".into(),
            key_size: 16,
            client_clock: "clock".into(),
            server_clock: Some("clock 42".into()),
            server_idle_us_per_sec: Some(1500.0),
            cases: vec![
                CaseResult {
                    workload: Workload::Put,
                    clients: 1,
                    results: vec![
                        TransportResult {
                            lane: Lane {
                                kind: TransportKind::Raw,
                                tls: false,
                            },
                            rounds: vec![run(0, 4000, 20), run(1, 5000, 20), run(2, 4500, 20)],
                        },
                        TransportResult {
                            lane: Lane {
                                kind: TransportKind::Blocking,
                                tls: false,
                            },
                            rounds: vec![run(0, 3000, 40), run(1, 3400, 40), run(2, 3500, 40)],
                        },
                    ],
                },
                CaseResult {
                    workload: Workload::V3Range,
                    clients: 32,
                    results: vec![
                        TransportResult {
                            lane: Lane {
                                kind: TransportKind::Raw,
                                tls: false,
                            },
                            rounds: vec![run(0, 2000, 20)],
                        },
                        TransportResult {
                            lane: Lane {
                                kind: TransportKind::Tokio,
                                tls: false,
                            },
                            rounds: vec![run(0, 2200, 25)],
                        },
                    ],
                },
            ],
        };
        let mut out = Vec::new();
        write_report(&mut out, &report).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("tokio: "), "{text}");
        for needle in [
            "etcd-bench: etcd 3.4.23 at http://127.0.0.1:2379 (throwaway server, pid 42)",
            "=== raw (round 3 of 3; req/s of every round: 4,000, 5,000, 4,500) ===",
            "  Requests/sec:\t4500.0",
            "  Client CPU:\t20.0 µs/op",
            "  Server CPU:\t100.0 µs/op",
            "  99.9% in 0.9990 ms.",
            "Response time histogram:",
            "workloads: put, clients: 1, total: 10000 requests per run",
            "######## put, 1 in flight ########",
            "######## v3-range, 32 in flight ########",
            "| put | 1 | raw | 4,500 | 1.00× | 0.500 | 0.289 | 0.500 | 0.900 | 0.990 | 0.999 | 20.0 | 1.00× | 100.0 |",
            "| put | 1 | blocking | 3,400 | 0.76× | 0.500 | 0.289 | 0.500 | 0.900 | 0.990 | 0.999 | 40.0 | 2.00× | 100.0 |",
            "| v3-range | 32 | tokio | 2,200 | 1.10× | 0.500 | 0.289 | 0.500 | 0.900 | 0.990 | 0.999 | 25.0 | 1.25× | 100.0 |",
            "note: put ×1 blocking: below 0.9× raw requests/second",
            "note: put ×1 blocking: above 1.5× raw client CPU per request",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }
}
