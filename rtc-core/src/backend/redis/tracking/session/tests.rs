//! The tracking session's state machine, driven by hand: replies and pushes built here, no server.

use super::*;
use crate::near::NearCache;
use crate::settings::TlsMaterial;

const PREFIXES: [&str; 2] = ["rtc:e:ns:", "rtc:t:ns:"];

fn near() -> Arc<NearCache> {
    Arc::new(NearCache::new(100, None))
}

fn info(address: &str) -> ConnectionInfo {
    redis::IntoConnectionInfo::into_connection_info(format!("redis://{address}/?protocol=resp3"))
        .unwrap()
}

/// A session as `backend::redis::track` starts one: a server, the primary behind Sentinel or
/// a cluster's masters announce what the fills read there, replicas every change under the
/// prefixes.
fn session(source: Source, near: &Arc<NearCache>) -> Session {
    let prefixes = PREFIXES.iter().map(|prefix| prefix.to_string()).collect();
    let announced = Announced::Read { replicas: prefixes };
    let near: Weak<NearCache> = Arc::downgrade(near);
    Session::new(source, announced, near, Arc::new(AtomicBool::new(false)))
}

fn server() -> Source {
    Source::Server(Client::open(info("127.0.0.1:6000")).unwrap())
}

fn command(command: &Cmd) -> String {
    let words: Vec<String> = command
        .args_iter()
        .map(|arg| match arg {
            redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            _ => "<cursor>".to_owned(),
        })
        .collect();
    words.join(" ")
}

/// A step as text, instants relative to `start`.
fn said(step: &Step, start: Instant) -> String {
    match step {
        Step::Pause(pause) => format!("pause {}ms", pause.as_millis()),
        Step::Ask(client, commands) => {
            let commands: Vec<String> = commands.iter().map(command).collect();
            format!(
                "ask {}: {}",
                client.get_connection_info().addr(),
                commands.join("; ")
            )
        }
        Step::Open(client) => format!("open {}", client.get_connection_info().addr()),
        Step::Send(index, sent) => format!("send {index}: {}", command(sent)),
        Step::Listen(until) => format!("listen until +{}ms", (*until - start).as_millis()),
        Step::Stop => "stop".to_owned(),
    }
}

/// Drives `session` with `events` at `start + ms`, each paired with the step it is
/// expected to give.
fn expect(
    session: &mut Session,
    start: Instant,
    script: impl IntoIterator<Item = (u64, Event, &'static str)>,
) {
    for (ms, event, expected) in script {
        let shown = format!("{event:?}");
        let step = session.step(event, start + Duration::from_millis(ms));
        assert_eq!(said(&step, start), expected, "after {shown} at +{ms}ms");
    }
}

/// A server's tracking: the id of the connection that receives the messages, then the
/// fills' connection tracks what it reads for it.
const CLIENT_ID: &str = "send 0: CLIENT ID";
const TRACKING_ON_OPTIN: &str = "send 1: CLIENT TRACKING ON REDIRECT 7 OPTIN";

fn client_id() -> Event {
    Event::Replied(Ok(Value::Int(7)))
}

const TRACKING_ON_2: &str = "send 2: CLIENT TRACKING ON BCAST PREFIX rtc:e:ns: PREFIX rtc:t:ns:";

fn replied() -> Event {
    Event::Replied(Ok(Value::Okay))
}

fn failed() -> RedisError {
    RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
}

fn invalidated(keys: &[&str]) -> Event {
    let keys = keys
        .iter()
        .map(|key| Value::BulkString(key.as_bytes().to_vec()))
        .collect();
    Event::Pushed(PushInfo {
        kind: PushKind::Invalidate,
        data: vec![Value::Array(keys)],
    })
}

/// A server session that has just asked to open its first connection, at `start`.
fn opening_a_server(near: &Arc<NearCache>, start: Instant) -> Session {
    let mut tracking = session(server(), near);
    expect(
        &mut tracking,
        start,
        [(0, Event::Paused, "open 127.0.0.1:6000")],
    );
    tracking
}

/// A server session, set up and trusted at `start`.
fn following_a_server(near: &Arc<NearCache>, start: Instant) -> Session {
    let mut tracking = opening_a_server(near, start);
    expect(
        &mut tracking,
        start,
        [
            (0, Event::Opened(Ok(())), CLIENT_ID),
            (0, client_id(), "open 127.0.0.1:6000"),
            (0, Event::Opened(Ok(())), TRACKING_ON_OPTIN),
        ],
    );
    assert!(
        !near.watches().is_trusted(),
        "trusted only once tracking is on"
    );
    expect(
        &mut tracking,
        start,
        [(0, replied(), "listen until +1000ms")],
    );
    assert!(near.watches().is_trusted());
    tracking
}

#[test]
fn a_server_is_trusted_once_tracking_is_on_and_messages_end_watches() {
    let near = near();
    let start = Instant::now();
    let mut tracking = following_a_server(&near, start);
    let watched = near.watches().watch(["rtc:e:ns:a", "rtc:e:ns:b"]).unwrap();
    expect(
        &mut tracking,
        start,
        [(10, invalidated(&["rtc:e:ns:a"]), "listen until +1000ms")],
    );
    assert!(!watched[0].is_live(), "the announced key's watch ends");
    assert!(watched[1].is_live(), "the other key's watch lives on");
    let flushed = Event::Pushed(PushInfo {
        kind: PushKind::Invalidate,
        data: vec![Value::Nil],
    });
    expect(
        &mut tracking,
        start,
        [(20, flushed, "listen until +1000ms")],
    );
    assert!(!watched[1].is_live(), "a flush ends every watch");
    assert!(near.watches().is_trusted());
}

#[test]
fn a_dropped_connection_distrusts_the_near_cache_until_tracking_is_back() {
    let near = near();
    let start = Instant::now();
    let mut tracking = following_a_server(&near, start);
    let watched = near.watches().watch(["rtc:e:ns:a"]).unwrap();
    let dropped = Event::Pushed(PushInfo {
        kind: PushKind::Disconnection,
        data: Vec::new(),
    });
    expect(&mut tracking, start, [(10, dropped, "pause 50ms")]);
    assert!(!near.watches().is_trusted());
    assert!(!watched[0].is_live());
    expect(
        &mut tracking,
        start,
        [
            (60, Event::Paused, "open 127.0.0.1:6000"),
            (60, Event::Opened(Ok(())), CLIENT_ID),
            (60, client_id(), "open 127.0.0.1:6000"),
            (60, Event::Opened(Ok(())), TRACKING_ON_OPTIN),
        ],
    );
    assert!(!near.watches().is_trusted());
    expect(
        &mut tracking,
        start,
        [(61, replied(), "listen until +1061ms")],
    );
    assert!(near.watches().is_trusted());
    // Every channel closed is a drop too.
    expect(&mut tracking, start, [(70, Event::Closed, "pause 50ms")]);
    assert!(!near.watches().is_trusted());
}

#[test]
fn each_heartbeat_pings_every_connection_and_a_silent_one_is_lost() {
    let near = near();
    let start = Instant::now();
    let mut tracking = following_a_server(&near, start);
    expect(
        &mut tracking,
        start,
        [
            (999, Event::Quiet, "listen until +1000ms"),
            (1000, Event::Quiet, "send 0: PING"),
            // The fills' connection too: its loss would lose what it tracks.
            (1001, replied(), "send 1: PING"),
            (1001, replied(), "listen until +2001ms"),
            (2001, Event::Quiet, "send 0: PING"),
            (2001, replied(), "send 1: PING"),
            (2002, Event::Replied(Err(failed())), "pause 50ms"),
        ],
    );
    assert!(!near.watches().is_trusted());
}

#[test]
fn failed_set_ups_pause_longer_each_time_up_to_a_limit_and_warn_once() {
    let near = near();
    let start = Instant::now();
    let mut tracking = opening_a_server(&near, start);
    let mut pauses = Vec::new();
    for _ in 0..8 {
        let mut step = tracking.step(Event::Opened(Err(failed())), start);
        let mut paused = Duration::ZERO;
        while let Step::Pause(pause) = step {
            assert!(
                pause <= FIRST_PAUSE,
                "stops are looked for between short sleeps"
            );
            paused += pause;
            step = tracking.step(Event::Paused, start);
        }
        assert_eq!(said(&step, start), "open 127.0.0.1:6000");
        pauses.push(paused.as_millis());
    }
    assert_eq!(pauses, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
    assert!(tracking.reported);
    // Tracking up again starts the pauses over.
    expect(
        &mut tracking,
        start,
        [
            (0, Event::Opened(Ok(())), CLIENT_ID),
            (0, client_id(), "open 127.0.0.1:6000"),
            (0, Event::Opened(Ok(())), TRACKING_ON_OPTIN),
            (0, replied(), "listen until +1000ms"),
        ],
    );
    assert!(!tracking.reported);
    assert_eq!(tracking.pause, FIRST_PAUSE);
}

#[test]
fn a_dropped_cache_or_a_stop_ends_the_session() {
    let near = near();
    let start = Instant::now();
    let mut tracking = following_a_server(&near, start);
    tracking.stop.store(true, Ordering::Release);
    expect(&mut tracking, start, [(5, Event::Quiet, "stop")]);

    let near = self::near();
    let mut tracking = following_a_server(&near, start);
    drop(near);
    expect(&mut tracking, start, [(5, invalidated(&["k"]), "stop")]);
}

fn node(host: &str, port: i64) -> Value {
    Value::Array(vec![
        Value::BulkString(host.as_bytes().to_vec()),
        Value::Int(port),
    ])
}

/// Two ranges, each with its master and one replica (`[master, replica]`).
fn slots(nodes: [[i64; 2]; 2]) -> Value {
    Value::Array(vec![
        Value::Array(vec![
            Value::Int(0),
            Value::Int(8191),
            node("127.0.0.1", nodes[0][0]),
            node("127.0.0.1", nodes[0][1]),
        ]),
        Value::Array(vec![
            Value::Int(8192),
            Value::Int(16383),
            node("127.0.0.1", nodes[1][0]),
            node("127.0.0.1", nodes[1][1]),
        ]),
    ])
}

#[test]
fn a_cluster_is_found_from_the_first_seed_that_answers_its_masters_track_the_fills_and_a_moved_slot_starts_over(
) {
    let near = near();
    let start = Instant::now();
    let source = Source::Cluster {
        seeds: vec![info("127.0.0.1:7000"), info("127.0.0.1:7001")],
        tls: TlsMaterial::default(),
    };
    let mut tracking = session(source, &near);
    expect(
        &mut tracking,
        start,
        [
            (0, Event::Paused, "ask 127.0.0.1:7000: CLUSTER SLOTS"),
            (
                1,
                Event::Asked(Err(failed())),
                "ask 127.0.0.1:7001: CLUSTER SLOTS",
            ),
            (
                2,
                Event::Asked(Ok(vec![slots([[7000, 7002], [7001, 7003]])])),
                "open 127.0.0.1:7000",
            ),
            // Each master twice: its messages' connection, then its fills' one.
            (3, Event::Opened(Ok(())), CLIENT_ID),
            (4, client_id(), "open 127.0.0.1:7000"),
            (5, Event::Opened(Ok(())), TRACKING_ON_OPTIN),
            (6, replied(), "open 127.0.0.1:7001"),
            (7, Event::Opened(Ok(())), "send 2: CLIENT ID"),
            (8, Event::Replied(Ok(Value::Int(8))), "open 127.0.0.1:7001"),
            (
                9,
                Event::Opened(Ok(())),
                "send 3: CLIENT TRACKING ON REDIRECT 8 OPTIN",
            ),
            // Then each replica, announcing every write it applies.
            (10, replied(), "open 127.0.0.1:7002"),
            (
                11,
                Event::Opened(Ok(())),
                "send 4: CLIENT TRACKING ON BCAST PREFIX rtc:e:ns: PREFIX rtc:t:ns:",
            ),
            (12, replied(), "open 127.0.0.1:7003"),
            (
                13,
                Event::Opened(Ok(())),
                "send 5: CLIENT TRACKING ON BCAST PREFIX rtc:e:ns: PREFIX rtc:t:ns:",
            ),
            (14, replied(), "listen until +1014ms"),
        ],
    );
    // The fills' connections, in order, each with the slots its master serves.
    assert_eq!(
        tracking.fills_servers(),
        [vec![(0, 8191)], vec![(8192, 16383)]]
    );
    assert!((0..6)
        .map(|opened| tracking.opens_fills(opened))
        .eq([false, true, false, true, false, false]));
    // Each heartbeat pings every connection, then compares the slots.
    let heartbeat = |at: u64, layout: Value, then: &'static str| {
        [
            (at, Event::Quiet, "send 0: PING"),
            (at + 1, replied(), "send 1: PING"),
            (at + 2, replied(), "send 2: PING"),
            (at + 3, replied(), "send 3: PING"),
            (at + 4, replied(), "send 4: PING"),
            (at + 5, replied(), "send 5: PING"),
            (at + 6, replied(), "send 0: CLUSTER SLOTS"),
            (at + 7, Event::Replied(Ok(layout)), then),
        ]
    };
    let same = slots([[7000, 7002], [7001, 7003]]);
    expect(
        &mut tracking,
        start,
        heartbeat(1014, same, "listen until +2021ms"),
    );
    assert!(near.watches().is_trusted());
    // A failover: the second range's master is its replica now.
    let failed_over = slots([[7000, 7002], [7003, 7001]]);
    expect(
        &mut tracking,
        start,
        heartbeat(2021, failed_over, "pause 0ms"),
    );
    expect(
        &mut tracking,
        start,
        [(2028, Event::Paused, "ask 127.0.0.1:7000: CLUSTER SLOTS")],
    );
    assert!(!near.watches().is_trusted());
}

#[test]
fn behind_sentinels_the_fills_primary_and_its_up_replicas_are_tracked_until_they_change() {
    let near = near();
    let start = Instant::now();
    let source = Source::Sentinel {
        sentinels: vec![info("127.0.0.1:26379")],
        service: "svc".to_owned(),
        primary: info("127.0.0.1:6379"),
        tls: TlsMaterial::default(),
    };
    let replica = |port: &str, flags: &str| {
        Value::Map(
            [("ip", "127.0.0.1"), ("port", port), ("flags", flags)]
                .into_iter()
                .map(|(field, value)| {
                    (
                        Value::BulkString(field.as_bytes().to_vec()),
                        Value::BulkString(value.as_bytes().to_vec()),
                    )
                })
                .collect(),
        )
    };
    let answer = |primary: &str, replicas: Vec<Value>| {
        Event::Asked(Ok(vec![
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::BulkString(primary.as_bytes().to_vec()),
            ]),
            Value::Array(replicas),
        ]))
    };
    let ask = "ask 127.0.0.1:26379: SENTINEL GET-MASTER-ADDR-BY-NAME svc; SENTINEL REPLICAS svc";
    let mut tracking = session(source, &near);
    let replicas = vec![replica("6381", "slave"), replica("6382", "slave,s_down")];
    expect(
        &mut tracking,
        start,
        [
            (0, Event::Paused, ask),
            // The primary twice (the messages', then the fills' `OPTIN`), then the replica up.
            (1, answer("6380", replicas), "open 127.0.0.1:6380"),
            (2, Event::Opened(Ok(())), CLIENT_ID),
            (3, client_id(), "open 127.0.0.1:6380"),
            (4, Event::Opened(Ok(())), TRACKING_ON_OPTIN),
            (5, replied(), "open 127.0.0.1:6381"),
            (6, Event::Opened(Ok(())), TRACKING_ON_2),
            (7, replied(), "listen until +1007ms"),
            (1007, Event::Quiet, "send 0: PING"),
            (1008, replied(), "send 1: PING"),
            (1009, replied(), "send 2: PING"),
            (1010, replied(), ask),
        ],
    );
    assert!(near.watches().is_trusted());
    let promoted = answer("6381", vec![replica("6380", "slave")]);
    expect(&mut tracking, start, [(1011, promoted, "pause 0ms")]);
    assert!(!near.watches().is_trusted());
    // A sentinel that knows no such primary: set-up fails, and is tried again.
    expect(
        &mut tracking,
        start,
        [
            (1011, Event::Paused, ask),
            (
                1012,
                Event::Asked(Ok(vec![Value::Nil, Value::Array(Vec::new())])),
                "pause 50ms",
            ),
        ],
    );
}

/// The fills' connection redirects its messages to the first: a broken redirection (the
/// first is gone) loses what was announced since, as a drop does.
#[test]
fn a_broken_redirection_is_a_drop() {
    let near = near();
    let start = Instant::now();
    let mut tracking = following_a_server(&near, start);
    let broken = Event::Pushed(PushInfo {
        kind: PushKind::Other("tracking-redir-broken".into()),
        data: Vec::new(),
    });
    expect(&mut tracking, start, [(10, broken, "pause 50ms")]);
    assert!(!near.watches().is_trusted());
}

/// A `CLIENT ID` answered with anything but a number fails the set-up.
#[test]
fn an_unexpected_client_id_fails_the_set_up() {
    let near = near();
    let start = Instant::now();
    let mut tracking = opening_a_server(&near, start);
    expect(
        &mut tracking,
        start,
        [
            (0, Event::Opened(Ok(())), CLIENT_ID),
            (0, replied(), "pause 50ms"),
        ],
    );
    assert!(!near.watches().is_trusted());
}
