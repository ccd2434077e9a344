//! Throwaway TLS material for the TLS scenarios, made at test time with
//! rcgen: a CA, server certificates (for `127.0.0.1` and `localhost`, for
//! another name, expired) and a client certificate, written to a temp dir
//! as PEM files etcd reads.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

use etcd_proto::tls::TlsOptions;

use crate::harness::{EtcdCluster, EtcdServer};

/// A CA and what it signed, as PEM, with the files etcd is given.
pub struct TestPki {
    dir: PathBuf,
    ca: Certificate,
    ca_key: KeyPair,
    /// The CA certificate.
    pub ca_pem: String,
}

/// A certificate and its key, as PEM.
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

impl TestPki {
    /// A new CA named `name`, its files under a fresh temp dir.
    pub fn new(name: &str) -> TestPki {
        let dir = std::env::temp_dir().join(format!(
            "etcd-tests-pki-{name}-{}-{}",
            std::process::id(),
            next_id()
        ));
        std::fs::create_dir_all(&dir).expect("pki dir");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name = dn(&format!("etcd-tests CA {name}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = params.self_signed(&ca_key).expect("CA certificate");
        let ca_pem = ca.pem();
        std::fs::write(dir.join("ca.pem"), &ca_pem).expect("write CA");
        TestPki {
            dir,
            ca,
            ca_key,
            ca_pem,
        }
    }

    /// A server certificate for `names` (DNS names or IP addresses);
    /// `expired`: valid until yesterday. It is good for client auth too:
    /// etcd's JSON gateway presents it to etcd's own gRPC server, which
    /// asks for one under `--client-cert-auth`.
    pub fn server(&self, names: &[&str], expired: bool) -> Issued {
        let usages = [
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.issue(names, Some("etcd-tests server"), &usages, expired)
    }

    /// A client certificate whose common name is `user` (etcd's CN auth).
    pub fn client(&self, user: &str) -> Issued {
        self.issue(
            &[],
            Some(user),
            &[ExtendedKeyUsagePurpose::ClientAuth],
            false,
        )
    }

    /// A client certificate with no common name: what etcd's JSON gateway
    /// needs while auth is on (it refuses a CN it cannot pass on).
    pub fn client_without_name(&self) -> Issued {
        self.issue(&[], None, &[ExtendedKeyUsagePurpose::ClientAuth], false)
    }

    fn issue(
        &self,
        names: &[&str],
        common_name: Option<&str>,
        usages: &[ExtendedKeyUsagePurpose],
        expired: bool,
    ) -> Issued {
        let key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params.distinguished_name = common_name.map_or_else(DistinguishedName::new, dn);
        params.extended_key_usages = usages.to_vec();
        if expired {
            let now = time::OffsetDateTime::now_utc();
            params.not_before = now - time::Duration::days(30);
            params.not_after = now - time::Duration::days(1);
        }
        let cert = params
            .signed_by(&key, &self.ca, &self.ca_key)
            .expect("signed certificate");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Starts a server serving TLS with `cert` (and plain HTTP for the
    /// harness); with `client_auth`, TLS clients must present a
    /// certificate this CA signed. `extra`: more etcd flags.
    pub fn start_server(&self, cert: &Issued, client_auth: bool, extra: &[&str]) -> EtcdServer {
        let mut flags = self.client_tls_flags(&self.write_issued(cert), client_auth);
        flags.extend(extra.iter().map(|s| s.to_string()));
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        EtcdServer::start_with(&flags)
    }

    /// Starts `members` members serving clients as
    /// [`start_server`](TestPki::start_server) does, which also talk to
    /// each other over TLS with `cert`, each requiring the other's
    /// certificate (`--peer-client-cert-auth`).
    pub fn start_cluster(&self, members: usize, cert: &Issued, client_auth: bool) -> EtcdCluster {
        let files = self.write_issued(cert);
        let mut flags = self.client_tls_flags(&files, client_auth);
        let (cert_file, key_file) = files;
        flags.extend([
            format!("--peer-cert-file={}", cert_file.display()),
            format!("--peer-key-file={}", key_file.display()),
            format!("--peer-trusted-ca-file={}", self.ca_file().display()),
            "--peer-client-cert-auth=true".to_owned(),
        ]);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        EtcdCluster::start_with(members, &flags)
    }

    /// TLS options that trust this CA only.
    pub fn trust(&self) -> TlsOptions {
        TlsOptions::default()
            .ca_pem(self.ca_pem.clone())
            .system_roots(false)
    }

    fn client_tls_flags(
        &self,
        (cert_file, key_file): &(PathBuf, PathBuf),
        client_auth: bool,
    ) -> Vec<String> {
        let mut flags = vec![
            format!("--cert-file={}", cert_file.display()),
            format!("--key-file={}", key_file.display()),
        ];
        if client_auth {
            flags.push(format!("--trusted-ca-file={}", self.ca_file().display()));
            flags.push("--client-cert-auth=true".to_owned());
        }
        flags
    }

    fn write_issued(&self, cert: &Issued) -> (PathBuf, PathBuf) {
        let n = next_id();
        (
            self.write(&format!("cert-{n}.pem"), &cert.cert_pem),
            self.write(&format!("cert-{n}.key"), &cert.key_pem),
        )
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn write(&self, name: &str, pem: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, pem).expect("write PEM");
        path
    }

    /// The directory holding the PEM files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn next_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
