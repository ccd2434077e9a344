//! v2 auth administration (python-etcd's `etcd.auth`) against a real etcd,
//! on every transport: users, roles, path permissions, enable and disable,
//! and what a client without credentials gets once auth is on.

use etcd_proto::v2::auth::{AuthChange, AuthRead, Role, User};
use etcd_proto::v2::V2ErrorCode;
use etcd_proto::v3::Permission;
use etcd_proto::Config;
use etcd_tests::{Env, TestClient};

/// A client of the transport under test with v2 basic credentials.
fn client_as(env: &Env, user: &str, password: &str) -> TestClient {
    env.transport.connect_config(Config {
        endpoints: env.urls(),
        basic_auth: Some((user.to_owned(), password.to_owned())),
        ..Config::default()
    })
}

etcd_tests::scenarios! {
    /// python-etcd's auth integration scenario: a root user, auth on, the
    /// guest role's default rights revoked, then users and roles managed
    /// as root; anonymous and under-privileged clients are refused with
    /// errorCode 110; auth off again.
    fn users_roles_and_the_switch(client, env) {
        assert!(!client.execute(AuthRead::enabled()).unwrap());
        client.execute(AuthChange::user_add("root", "rootpw")).unwrap();
        client.execute(AuthChange::enable()).unwrap();
        let root = client_as(env, "root", "rootpw");
        assert!(root.execute(AuthRead::enabled()).unwrap());
        // Anonymous requests pass until guest loses its default rights.
        root.execute(AuthChange::role_revoke("guest", "/*", Permission::ReadWrite)).unwrap();
        let refused = client.set("/app/x", "1").unwrap_err();
        assert_eq!(refused.as_v2().map(|e| e.code), Some(V2ErrorCode::Unauthorized), "{refused}");

        // Roles and their path permissions.
        root.execute(AuthChange::role_add("app")).unwrap();
        root.execute(AuthChange::role_grant("app", "/app/*", Permission::ReadWrite)).unwrap();
        root.execute(AuthChange::role_grant("app", "/shared", Permission::Read)).unwrap();
        let app = root.execute(AuthRead::role("app")).unwrap();
        assert_eq!(
            app,
            Role { name: "app".into(), read: vec!["/app/*".into(), "/shared".into()], write: vec!["/app/*".into()] }
        );
        let names: Vec<String> = root.execute(AuthRead::roles()).unwrap().into_iter().map(|r| r.name).collect();
        assert!(names.contains(&"app".to_owned()) && names.contains(&"root".to_owned()), "{names:?}");

        // Users, their roles and passwords.
        root.execute(AuthChange::user_add("alice", "pw1")).unwrap();
        root.execute(AuthChange::user_grant("alice", &["app"])).unwrap();
        assert_eq!(root.execute(AuthRead::user("alice")).unwrap(), User { name: "alice".into(), roles: vec!["app".into()] });
        let mut users: Vec<String> = root.execute(AuthRead::users()).unwrap().into_iter().map(|u| u.name).collect();
        users.sort();
        assert_eq!(users, ["alice", "root"]);
        let alice = client_as(env, "alice", "pw1");
        alice.set("/app/x", "1").unwrap();
        let denied = alice.set("/other/x", "1").unwrap_err();
        assert_eq!(denied.as_v2().map(|e| e.code), Some(V2ErrorCode::Unauthorized), "{denied}");
        root.execute(AuthChange::user_change_password("alice", "pw2")).unwrap();
        assert!(alice.get("/app/x").is_err(), "the old password no longer works");
        let alice = client_as(env, "alice", "pw2");
        assert_eq!(alice.get("/app/x").unwrap().node.value.as_deref(), Some("1"));

        // Revokes take effect at once.
        root.execute(AuthChange::role_revoke("app", "/app/*", Permission::Write)).unwrap();
        assert!(alice.set("/app/x", "2").is_err(), "write revoked");
        alice.get("/app/x").unwrap();
        root.execute(AuthChange::user_revoke("alice", &["app"])).unwrap();
        assert!(root.execute(AuthRead::user("alice")).unwrap().roles.is_empty());

        // Deletes, and reads of what is gone.
        root.execute(AuthChange::user_delete("alice")).unwrap();
        root.execute(AuthChange::role_delete("app")).unwrap();
        let gone = root.execute(AuthRead::user("alice")).unwrap_err();
        assert!(gone.is_key_not_found(), "{gone}");
        assert!(root.execute(AuthRead::role("app")).unwrap_err().is_key_not_found());

        // Only root may turn it off; then anonymous writes work again.
        root.execute(AuthChange::disable()).unwrap();
        assert!(!client.execute(AuthRead::enabled()).unwrap());
        client.set("/app/x", "3").unwrap();
    }
}
