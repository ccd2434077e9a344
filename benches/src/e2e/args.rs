//! Command-line flags of `etcd-bench`, after etcd's `tools/benchmark`.
//!
//! Flags take their value as the next argument or after `=`
//! (`--clients 32`, `--clients=32`).

use super::transport::TransportKind;
use super::workload::Workload;

/// The usage text printed by `--help` and after a bad flag.
pub const USAGE: &str = "\
etcd-bench: end-to-end benchmark of the etcd clients against a real etcd
(v2 keys API and v3 JSON gateway)

USAGE: etcd-bench [FLAGS]

  --endpoints URL[,URL]  etcd client URLs; default: start a throwaway etcd
                         (binary from $ETCD_BIN or PATH) and stop it at the end
  --workload LIST        comma list of what every request does (default put):
                           put       v2 PUT /v2/keys/<key> (v2::Write)
                           get       v2 GET /v2/keys/<key> (v2::Read)
                           v3-put    POST /v3/kv/put (v3::Put)
                           v3-range  POST /v3/kv/range, one key,
                                     linearizable (v3::Get)
                         or all; get and v3-range write the keys first.
                         (--workloads is the same flag; v2-put and v2-get
                         name put and get)
  --clients N[,N]        requests in flight; 1 = sequential (default 1); a
                         list runs every workload at each count
  --total N              requests per measured run (default 10000)
  --key-size N           bytes per key (default 16)
  --key-space N          distinct keys, cycled over (default 2000)
  --val-size N           bytes per value (default 100)
  --transport LIST       comma list of raw,ureq,blocking,hyper,tokio,async-std
                         (default: all six); ureq and hyper send raw's
                         requests through the bare HTTP stack of
                         etcd-blocking and etcd-tokio: their floors
  --rounds N             measured runs per transport, interleaved; the median
                         round is reported (default 3)
  --warmup N             unmeasured requests before each run (default 500)
  --tls                  also run every transport over TLS (rustls), in the
                         same rounds: the throwaway server gets a TLS
                         listener with a certificate from a CA made at start,
                         and a table compares each transport's TLS lane with
                         its plain one (not with --endpoints)
  -h, --help             this text
";

/// What to run. See [`USAGE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// etcd client URLs; empty: start a server.
    pub endpoints: Vec<String>,
    /// Requests in flight, one session case per count (in this order).
    pub clients: Vec<usize>,
    /// Requests per measured run.
    pub total: usize,
    /// Bytes per key.
    pub key_size: usize,
    /// Distinct keys.
    pub key_space: usize,
    /// Bytes per value.
    pub val_size: usize,
    /// What every request does, one session case per workload (in this order).
    pub workloads: Vec<Workload>,
    /// The transports, in report order; empty: all of them.
    pub transports: Vec<TransportKind>,
    /// Measured runs per transport.
    pub rounds: usize,
    /// Unmeasured requests before each measured run.
    pub warmup: usize,
    /// Also run every transport over TLS.
    pub tls: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            endpoints: Vec::new(),
            clients: vec![1],
            total: 10_000,
            key_size: 16,
            key_space: 2000,
            val_size: 100,
            workloads: vec![Workload::Put],
            transports: Vec::new(),
            rounds: 3,
            warmup: 500,
            tls: false,
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the benchmark.
    Run(Options),
    /// Print [`USAGE`].
    Help,
}

impl Options {
    /// Parses the arguments (without the program name).
    pub fn parse<I, S>(args: I) -> Result<Command, String>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut o = Options::default();
        let mut args = args.into_iter().map(Into::into);
        while let Some(arg) = args.next() {
            if arg == "-h" || arg == "--help" {
                return Ok(Command::Help);
            }
            if arg == "--tls" {
                o.tls = true;
                continue;
            }
            let Some(flag) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument {arg:?}"));
            };
            let (name, value) = match flag.split_once('=') {
                Some((name, value)) => (name.to_owned(), value.to_owned()),
                None => {
                    let value = args
                        .next()
                        .ok_or_else(|| format!("--{flag} needs a value"))?;
                    (flag.to_owned(), value)
                }
            };
            let count = |min: usize| -> Result<usize, String> {
                let n: usize = value
                    .parse()
                    .map_err(|_| format!("--{name}: {value:?} is not a number"))?;
                if n < min {
                    return Err(format!("--{name} must be at least {min}"));
                }
                Ok(n)
            };
            match name.as_str() {
                "endpoints" => {
                    o.endpoints = value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect();
                    if o.endpoints.is_empty() {
                        return Err("--endpoints needs at least one URL".into());
                    }
                }
                "clients" => {
                    o.clients.clear();
                    for n in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        let n: usize = n
                            .parse()
                            .map_err(|_| format!("--clients: {n:?} is not a number"))?;
                        if n < 1 {
                            return Err("--clients must be at least 1".into());
                        }
                        if !o.clients.contains(&n) {
                            o.clients.push(n);
                        }
                    }
                    if o.clients.is_empty() {
                        return Err("--clients needs at least one number".into());
                    }
                }
                "total" => o.total = count(1)?,
                "key-size" => o.key_size = count(1)?,
                "key-space" => o.key_space = count(1)?,
                "val-size" => o.val_size = count(0)?,
                "workload" | "workloads" => o.workloads = Workload::parse_list(&value)?,
                "transport" | "transports" => {
                    o.transports.clear();
                    for name in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        let kind: TransportKind = name.parse()?;
                        if !o.transports.contains(&kind) {
                            o.transports.push(kind);
                        }
                    }
                }
                "rounds" => o.rounds = count(1)?,
                "warmup" => o.warmup = count(0)?,
                _ => return Err(format!("unknown flag --{name}")),
            }
        }
        if o.tls && !o.endpoints.is_empty() {
            return Err("--tls runs against the throwaway server: leave out --endpoints".into());
        }
        Ok(Command::Run(o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        Options::parse(args.iter().copied())
    }

    #[test]
    fn defaults() {
        assert_eq!(parse(&[]), Ok(Command::Run(Options::default())));
        assert_eq!(parse(&["-h"]), Ok(Command::Help));
    }

    #[test]
    fn every_flag_in_both_forms() {
        let Ok(Command::Run(o)) = parse(&[
            "--endpoints",
            "http://127.0.0.1:1,http://127.0.0.1:2",
            "--clients=32,1,32",
            "--total",
            "5000",
            "--key-size=20",
            "--key-space",
            "100",
            "--val-size",
            "0",
            "--workloads=get,v3-range",
            "--transport",
            "blocking,raw,raw",
            "--rounds",
            "5",
            "--warmup=0",
        ]) else {
            panic!("did not parse");
        };
        assert_eq!(o.endpoints, ["http://127.0.0.1:1", "http://127.0.0.1:2"]);
        assert!(!o.tls);
        assert_eq!((o.total, o.key_size, o.key_space), (5000, 20, 100));
        assert_eq!((o.val_size, o.rounds, o.warmup), (0, 5, 0));
        assert_eq!(o.clients, [32, 1]);
        assert_eq!(o.workloads, [Workload::Get, Workload::V3Range]);
        assert_eq!(o.transports, [TransportKind::Blocking, TransportKind::Raw]);
        let Ok(Command::Run(o)) = parse(&["--workload", "v3-put"]) else {
            panic!("did not parse");
        };
        assert_eq!(o.workloads, [Workload::V3Put]);
        let Ok(Command::Run(o)) = parse(&["--tls", "--rounds", "1"]) else {
            panic!("did not parse");
        };
        assert!(o.tls && o.rounds == 1);
        assert!(parse(&["--tls", "--endpoints", "http://127.0.0.1:1"])
            .unwrap_err()
            .contains("throwaway"));
    }

    #[test]
    fn mistakes_are_explained() {
        assert!(parse(&["--clients", "0"])
            .unwrap_err()
            .contains("at least 1"));
        assert!(parse(&["--clients", "1,0"])
            .unwrap_err()
            .contains("at least 1"));
        assert!(parse(&["--clients", ","])
            .unwrap_err()
            .contains("at least one"));
        assert!(parse(&["--clients"]).unwrap_err().contains("needs a value"));
        assert!(parse(&["--workload", "v4-put"])
            .unwrap_err()
            .contains("unknown workload"));
        assert!(parse(&["--total", "x"])
            .unwrap_err()
            .contains("not a number"));
        assert!(parse(&["--transport", "grpc"])
            .unwrap_err()
            .contains("unknown transport"));
        assert!(parse(&["--frobnicate", "1"])
            .unwrap_err()
            .contains("unknown flag"));
        assert!(parse(&["put"]).unwrap_err().contains("unexpected"));
    }
}
