//! A real etcd with v3 auth on and tokens that expire after 2 s idle, for
//! the auth scenarios of every suite.

use std::time::Duration;

use etcd_proto::v3::{AuthAdmin, KeyRange, Permission};
use etcd_proto::Config;

use crate::harness::EtcdServer;
use crate::{Env, TestClient};

/// Starts a server (`--auth-token=simple --auth-token-ttl=2`) with users
/// `root`/`rootpw` (every right) and `app`/`apppw` (read-write on `app/`),
/// auth enabled. Returns it with an anonymous client of the scenario's transport.
pub fn auth_server(env: &Env) -> (EtcdServer, TestClient) {
    let server = EtcdServer::start_with(&["--auth-token=simple", "--auth-token-ttl=2"]);
    let admin = env.client_for(&[server.client_url()]);
    for step in auth_setup() {
        admin.execute(step).expect("auth setup");
    }
    (server, admin)
}

/// The steps that give a server users `root`/`rootpw` (every right) and
/// `app`/`apppw` (read-write on `app/`) and turn v3 auth on.
pub fn auth_setup() -> Vec<AuthAdmin> {
    vec![
        AuthAdmin::user_add("root", "rootpw"),
        AuthAdmin::role_add("root"),
        AuthAdmin::user_grant_role("root", "root"),
        AuthAdmin::user_add("app", "apppw"),
        AuthAdmin::role_add("app"),
        AuthAdmin::role_grant_permission("app", &KeyRange::prefix("app/"), Permission::ReadWrite),
        AuthAdmin::user_grant_role("app", "app"),
        AuthAdmin::enable(),
    ]
}

/// A client of the scenario's transport logging in to `server` as `user`.
pub fn client_as(env: &Env, server: &EtcdServer, user: &str, password: &str) -> TestClient {
    env.transport.connect_config(Config {
        endpoints: vec![server.client_url()],
        v3_credentials: Some((user.to_owned(), password.to_owned())),
        request_timeout: Some(Duration::from_secs(10)),
        ..Config::default()
    })
}
