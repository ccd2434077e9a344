//! etcd v3 auth against a real etcd whose tokens expire after 2 s idle
//! (`--auth-token=simple --auth-token-ttl=2`), on every transport.

use std::time::{Duration, Instant};

use etcd_proto::v3::{AuthAdmin, AuthQuery, KeyRange, Permission, RolePermission, V3ErrorKind};
use etcd_proto::ErrorKind;
use etcd_tests::auth::{auth_server, client_as};

etcd_tests::v3_scenarios! {
    /// The auth store can be read back (users, a user's roles, roles, a
    /// role's permissions) and revoked from: a revoked role's user loses
    /// its access at once.
    fn auth_store_reads_and_revokes(client, env) {
        let (server, _anonymous) = auth_server(env);
        let root = client_as(env, &server, "root", "rootpw");
        let mut users = root.execute(AuthQuery::users()).unwrap();
        users.sort();
        assert_eq!(users, ["app", "root"]);
        assert_eq!(root.execute(AuthQuery::user_roles("app")).unwrap(), ["app"]);
        let mut roles = root.execute(AuthQuery::roles()).unwrap();
        roles.sort();
        assert_eq!(roles, ["app", "root"]);
        root.execute(AuthAdmin::role_grant_permission("app", &KeyRange::single("shared"), Permission::Read)).unwrap();
        let permissions = root.execute(AuthQuery::role_permissions("app")).unwrap();
        assert_eq!(
            permissions,
            [
                RolePermission { permission: Permission::ReadWrite, range: KeyRange::prefix("app/") },
                RolePermission { permission: Permission::Read, range: KeyRange::single("shared") },
            ]
        );
        root.execute(AuthAdmin::role_revoke_permission("app", &KeyRange::single("shared"))).unwrap();
        assert_eq!(root.execute(AuthQuery::role_permissions("app")).unwrap().len(), 1);
        let missing = root.execute(AuthQuery::user_roles("nobody")).unwrap_err();
        assert!(missing.to_string().contains("user name not found"), "{missing}");
        let app = client_as(env, &server, "app", "apppw");
        app.v3().put("app/k", "1").unwrap();
        root.execute(AuthAdmin::user_revoke_role("app", "app")).unwrap();
        assert!(root.execute(AuthQuery::user_roles("app")).unwrap().is_empty());
        let denied = app.v3().put("app/k", "2").unwrap_err();
        assert_eq!(denied.as_v3().unwrap().kind, V3ErrorKind::PermissionDenied, "{denied}");
        let _ = client;
    }

    /// Without a token etcd says "user name is empty"; a wrong password fails
    /// at once with a typed error and never loops; the right one works.
    fn credentials_are_checked_and_typed(client, env) {
        let (server, anonymous) = auth_server(env);
        let refused = anonymous.v3().put("app/x", "1").unwrap_err();
        assert_eq!(refused.as_v3().unwrap().kind, V3ErrorKind::UserEmpty);
        let started = Instant::now();
        let wrong = client_as(env, &server, "app", "nope").v3().put("app/x", "1").unwrap_err();
        assert_eq!(wrong.kind(), ErrorKind::Etcd);
        assert_eq!(wrong.as_v3().unwrap().kind, V3ErrorKind::AuthFailed);
        assert!(started.elapsed() < Duration::from_secs(3), "a wrong password must not loop");
        let app = client_as(env, &server, "app", "apppw");
        app.v3().put("app/x", "1").unwrap();
        assert_eq!(app.v3().get("app/x").unwrap().unwrap().value, b"1");
        let denied = app.v3().put("other/x", "1").unwrap_err();
        assert_eq!(denied.as_v3().unwrap().kind, V3ErrorKind::PermissionDenied);
        let _ = client;
    }

    /// A token that expires while the client is idle is renewed by itself,
    /// and the refused write is replayed once (it took no effect).
    fn expired_token_is_renewed(client, env) {
        let (server, _admin) = auth_server(env);
        let app = client_as(env, &server, "app", "apppw");
        let first = app.v3().put("app/counter", "1").unwrap().header.revision;
        std::thread::sleep(Duration::from_secs(4)); // the 2 s token expires
        let second = app.v3().put("app/counter", "2").unwrap().header.revision;
        assert_eq!(second, first + 1, "the write was applied exactly once");
        std::thread::sleep(Duration::from_secs(4));
        assert_eq!(app.v3().get("app/counter").unwrap().unwrap().value, b"2");
        let _ = client;
    }

    /// A change to the auth store makes older tokens stale ("revision of
    /// auth store is old"); the client fetches a new one and carries on.
    fn stale_auth_revision_is_renewed(client, env) {
        let (server, _admin) = auth_server(env);
        let root = client_as(env, &server, "root", "rootpw");
        let app = client_as(env, &server, "app", "apppw");
        app.v3().put("app/k", "1").unwrap();
        root.execute(AuthAdmin::user_add("someone", "pw")).unwrap();
        root.execute(AuthAdmin::role_add("another")).unwrap();
        app.v3().put("app/k", "2").unwrap();
        assert_eq!(app.v3().get("app/k").unwrap().unwrap().value, b"2");
        let _ = client;
    }

    /// After auth is turned off, a client holding a token drops it and works on.
    fn auth_disabled_later_drops_the_token(client, env) {
        let (server, _admin) = auth_server(env);
        let root = client_as(env, &server, "root", "rootpw");
        root.v3().put("k", "1").unwrap();
        root.execute(AuthAdmin::disable()).unwrap();
        root.v3().put("k", "2").unwrap();
        assert_eq!(root.v3().get("k").unwrap().unwrap().value, b"2");
        let _ = client;
    }

    /// Lease calls need no token even with auth on; keys on a lease do.
    fn leases_under_auth(client, env) {
        let (server, anonymous) = auth_server(env);
        let lease = anonymous.v3().grant(30).unwrap().id;
        anonymous.v3().keep_alive_once(lease).unwrap();
        let app = client_as(env, &server, "app", "apppw");
        app.execute(etcd_proto::v3::Put::new("app/leased", "v").lease(lease)).unwrap();
        app.v3().revoke(lease).unwrap();
        assert!(app.v3().get("app/leased").unwrap().is_none());
        let _ = client;
    }
}
