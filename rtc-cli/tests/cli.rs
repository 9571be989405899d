//! The `rtc` binary against real redis-server processes: each subcommand and each error.

use redis::Commands;
use rtc::{Lifetime, TaggedCache, NO_TAGS};
use rtc_tests::tls::TlsServer;
use rtc_tests::{free_port, unique_namespace, RedisServer};

mod support;
use support::*;

/// A server of its own, a fresh namespace, and a cache on both.
fn server_and_cache(label: &str) -> (RedisServer, String, TaggedCache) {
    let server = RedisServer::start();
    let namespace = unique_namespace(label);
    let cache = cache(&server.url(), &namespace);
    (server, namespace, cache)
}

/// `rtc stats --json`, parsed.
fn stats(url: &str, namespace: &str) -> serde_json::Value {
    let output = rtc(url, namespace, &["stats", "--json"]);
    assert_exit(&output, 0);
    serde_json::from_slice(&output.stdout).expect("stats --json prints JSON")
}

/// The id of a namespace, as its keys carry it (`rtc:<kind>:<id>:…`).
fn namespace_id(cache: &TaggedCache) -> String {
    let pattern = cache.key_pattern();
    pattern["rtc:?:".len()..pattern.len() - ":*".len()].to_owned()
}

#[test]
fn invalidate_makes_the_entries_carrying_a_tag_miss_and_spares_the_others() {
    let (server, namespace, cache) = server_and_cache("cli-invalidate");
    cache.set("ada", &"Ada", ["user:1"], Lifetime::Default);
    cache.set("bob", &"Bob", ["user:2"], Lifetime::Default);
    cache.set("both", &"both", ["user:1", "user:2"], Lifetime::Default);

    let output = rtc(
        &server.url(),
        &namespace,
        &["invalidate", "user:1", "user:3"],
    );

    assert_exit(&output, 0);
    assert_contains(stdout(&output), "invalidated 2 tags");
    assert!(cache.get::<String>("ada", ["user:1"]).is_err());
    assert!(cache.get::<String>("both", ["user:1", "user:2"]).is_err());
    assert_eq!(cache.get::<String>("bob", ["user:2"]).as_deref(), Ok("Bob"));
}

#[test]
fn invalidate_all_empties_the_namespace_and_no_other() {
    let server = RedisServer::start();
    let namespace = unique_namespace("cli-all");
    let other_namespace = unique_namespace("cli-all-other");
    let cache = cache(&server.url(), &namespace);
    let other = self::cache(&server.url(), &other_namespace);
    cache.set("a", &1, ["t"], Lifetime::Default);
    other.set("a", &2, ["t"], Lifetime::Default);

    let output = rtc(&server.url(), &namespace, &["invalidate-all"]);

    assert_exit(&output, 0);
    assert!(cache.get::<i32>("a", ["t"]).is_err());
    assert_eq!(other.get::<i32>("a", ["t"]), Ok(2));
}

#[test]
fn get_prints_a_hit_as_json_and_exits_0_and_says_miss_and_exits_1_otherwise() {
    let (server, namespace, cache) = server_and_cache("cli-get");
    cache.set(
        "user:1",
        &serde_json::json!({"name": "Ada", "id": 1}),
        ["users", "user:1"],
        Lifetime::Default,
    );

    let hit = rtc(
        &server.url(),
        &namespace,
        &["get", "user:1", "--tag", "user:1", "-t", "users"],
    );
    let other_tags = rtc(
        &server.url(),
        &namespace,
        &["get", "user:1", "--tag", "users"],
    );

    assert_exit(&hit, 0);
    let value: serde_json::Value = serde_json::from_slice(&hit.stdout).expect("a hit prints JSON");
    assert_eq!(value, serde_json::json!({"name": "Ada", "id": 1}));
    assert_exit(&other_tags, 1);
    assert_starts_with(stdout(&other_tags), "miss:");
}

#[test]
fn get_says_when_the_stored_value_is_not_json() {
    let (server, namespace, cache) = server_and_cache("cli-not-json");
    cache.set("blob", &"abcde", NO_TAGS, Lifetime::Default);
    // Rewrite the value after the entry's header, as another serializer would have written it.
    let mut connection = server.connection();
    let entry_key = format!("rtc:e:{}:*", namespace_id(&cache));
    let keys: Vec<Vec<u8>> = connection.keys(&entry_key).expect("KEYS in a test");
    assert_eq!(keys.len(), 1);
    let mut stored: Vec<u8> = connection.get(&keys[0]).expect("the entry");
    let value_start = stored.len() - br#""abcde""#.len();
    stored.truncate(value_start);
    stored.extend_from_slice(b"\xff\x00binary");
    let () = connection.set(&keys[0], stored).expect("SET");

    let output = rtc(&server.url(), &namespace, &["get", "blob"]);

    assert_exit(&output, 0);
    assert_starts_with(stdout(&output), "not JSON:");
}

#[test]
fn delete_removes_one_entry() {
    let (server, namespace, cache) = server_and_cache("cli-delete");
    cache.set("a", &1, ["t"], Lifetime::Default);
    cache.set("b", &2, ["t"], Lifetime::Default);

    let deleted = rtc(&server.url(), &namespace, &["delete", "a", "--tag", "t"]);
    let again = rtc(&server.url(), &namespace, &["delete", "a", "--tag", "t"]);

    assert_exit(&deleted, 0);
    assert_starts_with(stdout(&deleted), "deleted");
    assert!(cache.get::<i32>("a", ["t"]).is_err());
    assert_eq!(cache.get::<i32>("b", ["t"]), Ok(2));
    assert_exit(&again, 0);
    assert_starts_with(stdout(&again), "nothing to delete");
}

#[test]
fn stats_counts_entries_tombstones_tags_and_locks() {
    let (server, namespace, cache) = server_and_cache("cli-stats");
    for id in 0..5 {
        cache.set(
            format!("user:{id}"),
            &id,
            [format!("user:{id}"), "users".into()],
            Lifetime::Default,
        );
    }
    cache.delete("user:0", ["user:0", "users"]);
    let lock = format!("rtc:l:{}:{{held}}", namespace_id(&cache));
    let () = server.connection().set(&lock, "token").expect("SET");
    // Another namespace's keys are not counted.
    self::cache(&server.url(), &unique_namespace("cli-stats-other")).set(
        "x",
        &1,
        ["users"],
        Lifetime::Default,
    );

    let report = stats(&server.url(), &namespace);

    assert_eq!(report["entries"], 4);
    assert_eq!(report["tombstones"], 1);
    // user:0..4, users, and the namespace's own tag.
    assert_eq!(report["tags"], 7);
    assert_eq!(report["locks"], 1);
    assert_eq!(report["keys"], 13);
    assert_eq!(report["memory_samples"], 13);
    assert!(report["memory_bytes_estimate"].as_u64().unwrap() > 0);
    assert_eq!(
        report["servers"][0]["version"].as_str().map(|v| v >= "7"),
        Some(true)
    );

    let text = rtc(&server.url(), &namespace, &["stats"]);
    assert_exit(&text, 0);
    assert_contains(stdout(&text), "entries     4");
}

#[test]
fn stats_on_a_large_namespace_reports_progress_on_stderr_and_samples_memory() {
    let (server, namespace, cache) = server_and_cache("cli-large");
    let id = namespace_id(&cache);
    let mut pipe = redis::pipe();
    for index in 0..25_000 {
        pipe.set(format!("rtc:t:{id}:{index:032x}"), &7u64.to_le_bytes()[..])
            .ignore();
    }
    let () = pipe
        .query(&mut server.connection())
        .expect("the keys are written");

    let output = rtc(
        &server.url(),
        &namespace,
        &["stats", "--json", "--memory-samples", "100"],
    );

    assert_exit(&output, 0);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("pure JSON");
    assert_eq!(report["tags"], 25_000);
    assert_eq!(report["memory_samples"], 100);
    assert_contains(stderr(&output), "scanned 20000 keys");
}

#[test]
fn stats_warns_when_the_eviction_policy_can_evict_tag_keys() {
    let server =
        RedisServer::start_with(&["--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"]);
    let namespace = unique_namespace("cli-evict");
    cache(&server.url(), &namespace).set("a", &1, ["t"], Lifetime::Default);

    let report = stats(&server.url(), &namespace);

    let warnings = report["warnings"].as_array().expect("a list of warnings");
    assert_eq!(warnings.len(), 1, "{report}");
    assert!(warnings[0]
        .as_str()
        .unwrap()
        .contains("allkeys-lru may evict tag keys"));
}

#[test]
fn stats_of_a_namespace_with_no_keys_exits_4() {
    let server = RedisServer::start();

    let output = rtc(&server.url(), "nobody-writes-here", &["stats"]);

    assert_exit(&output, 4);
    assert_contains(stderr(&output), "holds no keys");
}

#[test]
fn check_reports_the_version_the_round_trip_and_every_command_allowed() {
    let server = RedisServer::start();

    let output = rtc(&server.url(), "checked", &["check"]);

    assert_exit(&output, 0);
    let out = stdout(&output);
    assert!(
        out.starts_with("round trip ") && out.contains("median of 5 PINGs to the server"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "127.0.0.1:{}: {}\n",
            server.port(),
            product(&server)
        )),
        "{out}"
    );
    assert!(out.contains("ok: rtc can use namespace 'checked'"), "{out}");
    assert!(!out.contains("DENIED"), "{out}");
}

/// The server's name and version as `INFO` gives them: `Redis 7.0.15`, `Valkey 8.1.8`.
fn product(server: &RedisServer) -> String {
    let info = |field| server.info_field("server", field);
    match info("server_name").as_deref() {
        Some("valkey") => format!("Valkey {}", info("valkey_version").unwrap()),
        _ => format!("Redis {}", info("redis_version").unwrap()),
    }
}

/// `ACL SETUSER <user> on >pw <rules>` for the key pattern of `namespace`.
fn add_user(server: &RedisServer, user: &str, namespace: &str, rules: &[&str]) {
    let pattern = cache(&server.url(), namespace).key_pattern();
    let key_rule = format!("~{pattern}");
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(user)
        .arg(&["on", ">pw", key_rule.as_str()][..])
        .arg(rules)
        .query(&mut server.connection())
        .expect("ACL SETUSER");
}

#[test]
fn check_passes_for_a_user_confined_to_the_namespace() {
    let server = RedisServer::start();
    add_user(&server, "shop", "shop", &["+@all", "-@dangerous"]);
    let url = format!("redis://shop:pw@127.0.0.1:{}/0", server.port());

    let output = rtc(&url, "shop", &["check"]);

    assert_exit(&output, 0);
}

#[test]
fn check_names_each_command_the_user_may_not_run_and_exits_3() {
    let server = RedisServer::start();
    add_user(
        &server,
        "shop",
        "shop",
        &["+@all", "-@dangerous", "-evalsha"],
    );
    let url = format!("redis://shop:pw@127.0.0.1:{}/0", server.port());

    let confined = rtc(&url, "shop", &["check"]);
    let elsewhere = rtc(&url, "another-namespace", &["check"]);

    assert_exit(&confined, 3);
    assert_contains(stdout(&confined), "DENIED");
    assert_contains(stderr(&confined), "EVALSHA on");
    assert!(
        !stderr(&confined).contains("GET on"),
        "{}",
        stderr(&confined)
    );
    assert_exit(&elsewhere, 3);
    assert_contains(stderr(&elsewhere), "SET on");
}

#[test]
fn check_says_what_denied_tracking_costs_and_still_passes() {
    let server = RedisServer::start();
    add_user(
        &server,
        "shop",
        "shop",
        &[
            "+@all",
            "-@dangerous",
            "-client|tracking",
            "-client|caching",
        ],
    );
    let url = format!("redis://shop:pw@127.0.0.1:{}/0", server.port());

    let output = rtc(&url, "shop", &["check"]);

    assert_exit(&output, 0);
    let out = stdout(&output);
    assert_contains(out.clone(), "CLIENT TRACKING");
    assert_contains(
        out,
        "DENIED, every hit reads its tags (an MGET, not one GET)",
    );
}

#[test]
fn check_works_over_tls_with_a_custom_ca() {
    let Some(server) = TlsServer::start_or_skip(false) else {
        return;
    };
    let ca = server.ca_file();

    let output = bare_rtc()
        .args([
            "--url",
            &server.tls_url(),
            "--tls-ca-file",
            ca.to_str().unwrap(),
            "check",
        ])
        .output()
        .expect("rtc runs");

    assert_exit(&output, 0);
}

#[test]
fn an_unreachable_server_exits_3_with_one_line() {
    let url = format!("redis://127.0.0.1:{}/0", free_port());

    for args in [
        &["invalidate", "t"][..],
        &["get", "k"],
        &["stats"],
        &["check"],
    ] {
        let output = rtc(&url, "ns", args);
        assert_exit(&output, 3);
        assert_starts_with(stderr(&output), "rtc: cannot reach Redis at 127.0.0.1:");
        assert_eq!(stderr(&output).lines().count(), 1, "{}", stderr(&output));
    }
}

#[test]
fn a_wrong_password_exits_3_and_is_never_printed() {
    let server = RedisServer::start();
    server.config_set("requirepass", "right-password");
    let url = format!("redis://:hunter2@127.0.0.1:{}/0", server.port());

    let from_flag = rtc(&url, "ns", &["invalidate", "t"]);
    let from_env = bare_rtc()
        .env("REDIS_URL", &url)
        .args(["check"])
        .output()
        .unwrap();
    let help = bare_rtc()
        .env("REDIS_URL", &url)
        .arg("--help")
        .output()
        .unwrap();

    for output in [&from_flag, &from_env] {
        assert_exit(output, 3);
        assert_contains(stderr(output), "refused the credentials");
    }
    for output in [&from_flag, &from_env, &help] {
        assert!(!stdout(output).contains("hunter2") && !stderr(output).contains("hunter2"));
    }
}

#[test]
fn a_bad_url_exits_2_without_printing_the_password() {
    let output = rtc("redis://ada:hunter2@127.0.0.1:notaport/0", "ns", &["stats"]);
    let scheme = rtc("http://ada:hunter2@127.0.0.1/", "ns", &["check"]);

    for output in [&output, &scheme] {
        assert_exit(output, 2);
        assert_starts_with(stderr(output), "rtc: bad");
        assert!(!stderr(output).contains("hunter2"), "{}", stderr(output));
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["frobnicate"][..],
        &["invalidate"],
        &["get"],
        &["--timeout", "0", "check"],
    ] {
        let output = bare_rtc().args(args).output().unwrap();
        assert_exit(&output, 2);
    }
}

#[test]
fn the_url_and_the_namespace_default_to_the_environment() {
    let (server, namespace, cache) = server_and_cache("cli-env");
    cache.set("a", &1, ["t"], Lifetime::Default);

    let output = bare_rtc()
        .env("REDIS_URL", server.url())
        .env("RTC_NAMESPACE", &namespace)
        .args(["invalidate", "t"])
        .output()
        .unwrap();

    assert_exit(&output, 0);
    assert!(cache.get::<i32>("a", ["t"]).is_err());
}

#[test]
fn an_invalidation_a_full_server_refuses_exits_3() {
    let server = RedisServer::start();
    server.config_set("maxmemory", "1");

    let output = rtc(&server.url(), "full", &["invalidate", "t"]);

    assert_exit(&output, 3);
    assert_contains(stderr(&output), "did not happen");
}

#[test]
fn a_read_or_delete_the_user_may_not_run_exits_3_instead_of_reporting_a_miss() {
    let server = RedisServer::start();
    cache(&server.url(), "shop").set("k", &1, NO_TAGS, Lifetime::Default);
    add_user(&server, "reader", "shop", &["+ping", "+hello", "+scan"]);
    let url = format!("redis://reader:pw@127.0.0.1:{}/0", server.port());

    for args in [&["get", "k"][..], &["delete", "k"]] {
        let output = rtc(&url, "shop", args);
        assert_exit(&output, 3);
        assert_contains(stderr(&output), "did not happen");
    }
}

#[test]
fn a_get_or_delete_in_a_namespace_with_no_keys_exits_4() {
    let server = RedisServer::start();
    cache(&server.url(), "elsewhere").set("k", &1, NO_TAGS, Lifetime::Default);

    for args in [&["get", "k"][..], &["delete", "k"]] {
        let output = rtc(&server.url(), "mistyped", args);
        assert_exit(&output, 4);
        assert_contains(stderr(&output), "namespace 'mistyped' holds no keys");
    }
}

#[test]
fn get_exits_0_on_a_hit_1_on_a_miss_3_when_redis_is_unreachable_and_2_on_bad_usage() {
    let (server, namespace, cache) = server_and_cache("cli-get-codes");
    cache.set("k", &1, ["t"], Lifetime::Default);
    let closed = format!("redis://127.0.0.1:{}/0", free_port());

    let hit = rtc(&server.url(), &namespace, &["get", "k", "-t", "t"]);
    let miss = rtc(&server.url(), &namespace, &["get", "absent", "-t", "t"]);
    let unreachable = rtc(&closed, &namespace, &["get", "k", "-t", "t"]);
    let no_key = rtc(&server.url(), &namespace, &["get"]);
    let unknown_flag = rtc(&server.url(), &namespace, &["get", "k", "--frobnicate"]);

    assert_exit(&hit, 0);
    assert_eq!(stdout(&hit).trim(), "1");
    assert_exit(&miss, 1);
    assert_starts_with(stdout(&miss), "miss:");
    assert_exit(&unreachable, 3);
    assert_starts_with(
        stderr(&unreachable),
        "rtc: cannot reach Redis at 127.0.0.1:",
    );
    assert_exit(&no_key, 2);
    assert_exit(&unknown_flag, 2);
}

#[test]
fn help_names_the_environment_variables_and_shows_only_a_value_that_is_set() {
    let unset = bare_rtc().arg("--help").output().unwrap();
    let set = bare_rtc()
        .env("RTC_NAMESPACE", "shop")
        .arg("--help")
        .output()
        .unwrap();

    assert_exit(&unset, 0);
    assert_contains(stdout(&unset), "[env: RTC_NAMESPACE]");
    assert_contains(stdout(&unset), "[env: REDIS_URL]");
    assert!(
        !stdout(&unset).contains("RTC_NAMESPACE=]"),
        "{}",
        stdout(&unset)
    );
    assert_contains(stdout(&set), "[env: RTC_NAMESPACE=shop]");
}

#[test]
fn help_lists_the_exit_codes() {
    for args in [&["--help"][..], &["get", "--help"]] {
        let help = bare_rtc().args(args).output().unwrap();
        assert_exit(&help, 0);
        for line in [
            "0  done",
            "1  get: a miss",
            "2  bad usage",
            "3  Redis",
            "4  the namespace",
        ] {
            assert_contains(stdout(&help), line);
        }
    }
}
