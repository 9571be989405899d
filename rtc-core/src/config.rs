//! The builder and the settings it validates.

use std::fmt;
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

use crate::backend::redis::tls::{self, TlsMaterial, TlsOptions};
use crate::cache::TaggedCache;
use crate::codec::{Codec, Encoding};
use crate::decorate::StaleOptions;
use crate::error::ConfigError;
use crate::hook::{CacheInfo, Hook};

/// Where a cache keeps its entries, as configured.
#[derive(Clone)]
pub(crate) enum Storage {
    Disabled,
    Memory,
    Redis(Box<ConnectionInfo>),
    /// A primary found through Redis Sentinel.
    Sentinel(Box<SentinelSettings>),
    /// Seed nodes of a Redis Cluster; the rest of the topology is discovered.
    Cluster(Vec<ConnectionInfo>),
}

/// Where the sentinels are, which primary to ask them for, and how to connect to it.
#[derive(Clone)]
pub(crate) struct SentinelSettings {
    /// The sentinels, each with its own credentials and TLS.
    pub sentinels: Vec<ConnectionInfo>,
    /// The name the sentinels monitor the primary under (`sentinel monitor <name> ...`).
    pub service: String,
    /// Connections to the primary: db, credentials and TLS; the address is the sentinels'.
    pub primary: ConnectionInfo,
}

impl Storage {
    /// True when connections use TLS.
    pub(crate) fn uses_tls(&self) -> bool {
        let tls = |info: &ConnectionInfo| matches!(info.addr(), ConnectionAddr::TcpTls { .. });
        match self {
            Storage::Redis(info) => tls(info),
            Storage::Sentinel(sentinel) => {
                tls(&sentinel.primary) || sentinel.sentinels.iter().any(tls)
            }
            Storage::Cluster(nodes) => nodes.iter().any(tls),
            Storage::Disabled | Storage::Memory => false,
        }
    }
}

/// Validated settings, shared by every clone of a [`TaggedCache`].
#[derive(Clone)]
pub(crate) struct Settings {
    pub namespace: String,
    pub storage: Storage,
    pub socket_timeout: Duration,
    pub connect_timeout: Duration,
    pub default_lifetime: Option<Duration>,
    pub lifetime_for_tags: Option<Duration>,
    pub hook: Option<Hook>,
    pub tls: TlsMaterial,
    /// How values are written: the codec, and compression above a size.
    pub encoding: Encoding,
    /// The near cache, for a Redis server (`None` for the other storages).
    pub near: Option<NearSettings>,
    /// The in-memory backend's bound (`None`: only lifetimes bound it).
    pub max_entries: Option<u64>,
    /// The stale options of decorated functions that give none of their own.
    pub stale: StaleOptions,
}

/// How large the near cache may grow, and how long it keeps an entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NearSettings {
    pub max_entries: u64,
    pub max_age: Option<Duration>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let storage = match &self.storage {
            Storage::Disabled => "disabled".to_owned(),
            Storage::Memory => "in local memory".to_owned(),
            // The address alone: user names and passwords never reach a log.
            Storage::Redis(info) => {
                format!("redis at {} db {}", info.addr(), info.redis_settings().db())
            }
            Storage::Sentinel(sentinel) => format!(
                "redis primary `{}` db {} named by the sentinels at {}",
                sentinel.service,
                sentinel.primary.redis_settings().db(),
                addresses(&sentinel.sentinels)
            ),
            Storage::Cluster(nodes) => format!("redis cluster seeded by {}", addresses(nodes)),
        };
        f.debug_struct("Settings")
            .field("namespace", &self.namespace)
            .field("storage", &storage)
            .field("socket_timeout", &self.socket_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("default_lifetime", &self.default_lifetime)
            .field("lifetime_for_tags", &self.lifetime_for_tags)
            .field("hook", &self.hook)
            .field("encoding", &self.encoding)
            .field("near", &self.near)
            .field("stale", &self.stale)
            .finish()
    }
}

/// The addresses alone, for `Debug`: user names and passwords never reach a log.
fn addresses(nodes: &[ConnectionInfo]) -> String {
    nodes
        .iter()
        .map(|node| node.addr().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Configures a [`TaggedCache`]; made by [`TaggedCache::builder`].
///
/// Every setting has a default: namespace `"default"`, Redis at `redis://127.0.0.1:6379/0`,
/// 5 s socket and connect timeouts, entries living one hour, tags one day.
///
/// ```
/// use std::time::Duration;
/// use rtc::TaggedCache;
///
/// let cache = TaggedCache::builder()
///     .namespace("shop")
///     .url("redis://127.0.0.1:6379/0")
///     .socket_timeout(Duration::from_millis(250))
///     .default_lifetime(Some(Duration::from_secs(60)))
///     .build()
///     .expect("valid settings");
/// # let _ = cache;
/// ```
#[derive(Clone)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct TaggedCacheBuilder {
    namespace: String,
    url: Option<String>,
    cluster_urls: Vec<String>,
    sentinel: Option<(Vec<String>, String)>,
    host: Option<String>,
    port: Option<u16>,
    db: Option<i64>,
    ssl: bool,
    username: Option<String>,
    password: Option<String>,
    socket_timeout: Duration,
    connect_timeout: Duration,
    default_lifetime: Option<Duration>,
    lifetime_for_tags: Option<Duration>,
    disabled: bool,
    in_local_memory: bool,
    hook: Option<Hook>,
    tls: TlsOptions,
    encoding: Encoding,
    near_entries: Option<u64>,
    near_max_age: Option<Duration>,
    max_entries: Option<u64>,
    stale: StaleOptions,
}

impl fmt::Debug for TaggedCacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaggedCacheBuilder")
            .field("namespace", &self.namespace)
            .field("url", &self.url.as_ref().map(|_| "<set>"))
            .field("cluster_urls", &self.cluster_urls.len())
            .field(
                "sentinel",
                &self
                    .sentinel
                    .as_ref()
                    .map(|(urls, service)| (urls.len(), service)),
            )
            .field("host", &self.host)
            .field("port", &self.port)
            .field("db", &self.db)
            .field("ssl", &self.ssl)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("socket_timeout", &self.socket_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("default_lifetime", &self.default_lifetime)
            .field("lifetime_for_tags", &self.lifetime_for_tags)
            .field("disabled", &self.disabled)
            .field("in_local_memory", &self.in_local_memory)
            .field("hook", &self.hook)
            .field("tls", &self.tls)
            .field("encoding", &self.encoding)
            .field("near_entries", &self.near_entries)
            .field("near_max_age", &self.near_max_age)
            .field("max_entries", &self.max_entries)
            .field("stale", &self.stale)
            .finish()
    }
}

impl Default for TaggedCacheBuilder {
    fn default() -> Self {
        Self {
            namespace: "default".to_owned(),
            url: None,
            cluster_urls: Vec::new(),
            sentinel: None,
            host: None,
            port: None,
            db: None,
            ssl: false,
            username: None,
            password: None,
            socket_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            default_lifetime: Some(Duration::from_secs(3600)),
            lifetime_for_tags: Some(Duration::from_secs(86_400)),
            disabled: false,
            in_local_memory: false,
            hook: None,
            tls: TlsOptions::default(),
            encoding: Encoding::default(),
            near_entries: None,
            near_max_age: None,
            max_entries: None,
            stale: StaleOptions::default(),
        }
    }
}

impl TaggedCacheBuilder {
    /// Isolates this cache's entries and tags from every other namespace on the same server.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The server, as `redis://[user:password@]host[:port][/db]`, `rediss://…` (TLS) or
    /// `redis+unix:///path/to/socket[?db=N]`. Not to be combined with the field setters below.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Seed nodes of a Redis Cluster (`redis://host:port` each; the rest of the topology is
    /// discovered). Entries and tags spread over every shard. `username()` and `password()`
    /// apply to every node. Not to be combined with `url()` or `host()`/`port()`/`db()`.
    ///
    /// ```
    /// let cache = rtc::TaggedCache::builder()
    ///     .cluster_urls(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
    ///     .build()
    ///     .expect("valid settings");
    /// # let _ = cache;
    /// ```
    pub fn cluster_urls<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.cluster_urls = urls.into_iter().map(Into::into).collect();
        self
    }

    /// A primary with replicas watched by Redis Sentinel: the sentinels at `urls`
    /// (`redis://[user:password@]host:port` each, usually port 26379) name the current primary
    /// of `service_name` (the name in their `sentinel monitor` line), and every call goes to
    /// it. When the primary fails, calls miss until the sentinels have promoted a replica;
    /// then the next call asks them again and caching resumes, without a restart.
    ///
    /// `db()`, `username()` and `password()` apply to the primary; the sentinels' own
    /// credentials go in their URLs. TLS (`rediss://` sentinel URLs or `ssl(true)`) applies to
    /// the sentinels and the primary alike, with the same `tls_*` settings; a primary's
    /// certificate must then name the address the sentinels give (usually an IP address).
    /// Not supported: TLS to the sentinels but not to the primary (or the reverse), and reading
    /// from replicas (every call goes to the primary). Not to be combined with `url()`,
    /// `host()`/`port()` or `cluster_urls()`.
    ///
    /// ```
    /// let cache = rtc::TaggedCache::builder()
    ///     .sentinel(
    ///         ["redis://10.0.0.1:26379", "redis://10.0.0.2:26379", "redis://10.0.0.3:26379"],
    ///         "cache-primary",
    ///     )
    ///     .password("secret")
    ///     .build()
    ///     .expect("valid settings");
    /// # let _ = cache;
    /// ```
    pub fn sentinel<I, S>(mut self, urls: I, service_name: impl Into<String>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let urls = urls.into_iter().map(Into::into).collect();
        self.sentinel = Some((urls, service_name.into()));
        self
    }

    /// Host name or address of the server (default `127.0.0.1`).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// TCP port of the server (default 6379).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Database number (default 0).
    pub fn db(mut self, db: i64) -> Self {
        self.db = Some(db);
        self
    }

    /// Connect with TLS.
    pub fn ssl(mut self, ssl: bool) -> Self {
        self.ssl = ssl;
        self
    }

    /// Trusts the CA certificates in this PEM file (instead of the system's roots) for TLS
    /// connections. Needs the `tls` feature; the file is read by `build()`.
    pub fn tls_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls.ca_file = Some(path.into());
        self
    }

    /// Presents this client certificate and key (PEM files) to servers that ask for one
    /// (`tls-auth-clients yes`). Needs the `tls` feature; the files are read by `build()`.
    pub fn tls_client_cert(
        mut self,
        cert: impl Into<std::path::PathBuf>,
        key: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.tls.client_cert = Some((cert.into(), key.into()));
        self
    }

    /// **Dangerous**: accepts any server certificate, so anyone on the path can read and change
    /// the traffic. Only for tests against self-signed servers. Off by default.
    pub fn tls_insecure_skip_verify(mut self, insecure: bool) -> Self {
        self.tls.insecure = insecure;
        self
    }

    /// ACL user name.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// Password (of the ACL user, or of the default user). Never logged, never in `Debug`.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Longest wait for one reply before the call gives up and counts as a miss (default 5 s).
    pub fn socket_timeout(mut self, timeout: Duration) -> Self {
        self.socket_timeout = timeout;
        self
    }

    /// Longest wait for a connection to open (default 5 s).
    pub fn socket_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Lifetime of an entry written without one; `None` (or zero): entries never expire.
    pub fn default_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.default_lifetime = lifetime;
        self
    }

    /// Lifetime of a tag's version, counted from its creation or its last invalidation;
    /// `None` (or zero): tags never expire. An entry whose tag expired misses.
    pub fn lifetime_for_tags(mut self, lifetime: Option<Duration>) -> Self {
        self.lifetime_for_tags = lifetime;
        self
    }

    /// `true`: every `get` misses and every write does nothing; the API is unchanged.
    pub fn disabled(mut self, disabled: bool) -> Self {
        self.disabled = disabled;
        self
    }

    /// `true`: keep entries in this process's memory; no Redis is needed.
    pub fn in_local_memory(mut self, in_local_memory: bool) -> Self {
        self.in_local_memory = in_local_memory;
        self
    }

    /// The format values are stored in: [`Codec::Json`] (the default), or a compact binary one
    /// behind a cargo feature ([`Codec`] lists them). `#[cached(codec = ...)]` overrides it for
    /// one function.
    ///
    /// Every entry records its codec, and a reader that expects another one counts a miss
    /// (with a rate-limited warning) instead of decoding it: caches that share a namespace
    /// should use the same codec, and after a change every older entry misses once.
    ///
    /// ```
    /// use rtc::{Codec, TaggedCache};
    ///
    /// let cache = TaggedCache::builder()
    ///     .in_local_memory(true)
    ///     .codec(Codec::default())
    ///     .build()
    ///     .unwrap();
    /// cache.set("answer", &42, ["numbers"], None);
    /// assert_eq!(cache.get::<i32>("answer", ["numbers"]), Ok(42));
    /// ```
    pub fn codec(mut self, codec: Codec) -> Self {
        self.encoding.codec = codec;
        self
    }

    /// Compresses (LZ4) every value whose serialized form is longer than `bytes`, when that
    /// makes it smaller (feature `lz4`). Compressed entries are marked as such, so they are
    /// read by any cache of the namespace whatever its own threshold; a build without the
    /// feature reads them as misses. `#[cached(compress_above = ...)]` overrides it for one
    /// function. Without this setting nothing is compressed.
    ///
    /// LZ4 costs a few microseconds per 10 KB either way and shrinks typical JSON 3 to 4 times
    /// (figures in `BENCHMARKS.md`); values of a few hundred bytes rarely gain.
    ///
    /// ```
    /// use rtc::TaggedCache;
    ///
    /// let cache = TaggedCache::builder()
    ///     .in_local_memory(true)
    ///     .compress_above(1024)
    ///     .build()
    ///     .unwrap();
    /// let report = "quarterly figures ".repeat(200);
    /// cache.set("report", &report, ["reports"], None);
    /// assert_eq!(cache.get::<String>("report", ["reports"]), Ok(report));
    /// ```
    #[cfg(feature = "lz4")]
    pub fn compress_above(mut self, bytes: usize) -> Self {
        self.encoding.compress_above = Some(bytes);
        self
    }

    /// Keeps up to `max_entries` fresh entries in this process's memory and answers hits from
    /// there, with no round trip, while Redis itself keeps them honest: a dedicated connection
    /// turns on `CLIENT TRACKING` (RESP3, Redis 6 or later) for the namespace, and every change
    /// to an entry or a tag that a near entry depends on, made by any process, drops it as soon
    /// as Redis's message arrives; this process's own writes drop it before they return; a lost
    /// tracking connection turns the near cache off until tracking is back. A near entry never
    /// outlives the entry or its tags in Redis. Decorated functions keep their **decoded** value
    /// (values that are `Clone + Send + Sync + 'static`; `#[cached(near = false)]` opts one out).
    ///
    /// For a Redis server (`url()` or `host()`/`port()`), a cluster (every node is tracked)
    /// or a primary behind sentinels (the primary and its replicas are tracked); ignored for
    /// in-memory and disabled caches. RELIABILITY.md lists what it guarantees, BENCHMARKS.md what it costs.
    ///
    /// ```
    /// use rtc::TaggedCache;
    ///
    /// let cache = TaggedCache::builder()
    ///     .url("redis://127.0.0.1:6379/0")
    ///     .near_cache(10_000)
    ///     .build()
    ///     .unwrap();
    /// # let _ = cache;
    /// ```
    pub fn near_cache(mut self, max_entries: u64) -> Self {
        self.near_entries = Some(max_entries);
        self
    }

    /// The longest a near entry is kept, whatever its lifetime in Redis (by default, as long
    /// as the entry and its tags live). A bound on how long a value whose invalidation message
    /// was delayed may be served.
    pub fn near_cache_max_age(mut self, max_age: Duration) -> Self {
        self.near_max_age = Some(max_age);
        self
    }

    /// Bounds the in-memory backend (`in_local_memory(true)`) to about `max_entries` entries,
    /// evicting the least useful ones (quick_cache's policy) beyond it; without it only
    /// lifetimes bound it. The same bound applies to the decoded values the in-memory backend
    /// keeps for `#[cached]` functions (10,000 by default). Ignored for Redis (bound Redis
    /// with `maxmemory`).
    ///
    /// ```
    /// use rtc::{TaggedCache, NO_TAGS};
    ///
    /// let cache = TaggedCache::builder().in_local_memory(true).max_entries(1_000).build().unwrap();
    /// for n in 0..5_000 {
    ///     cache.set(n.to_string(), &n, NO_TAGS, None);
    /// }
    /// assert!(cache.local_entry_count().unwrap() <= 1_100);
    /// ```
    pub fn max_entries(mut self, max_entries: u64) -> Self {
        self.max_entries = Some(max_entries);
        self
    }

    /// The default `stale_if_error` of `#[cached]` functions that use this cache: a function
    /// that returns `Err` (or `None`) returns instead the value of its entry if that entry is
    /// past its lifetime by at most `window` and none of its tags was invalidated since it was
    /// written (a deleted entry is never returned). Entries these functions write stay in
    /// Redis `window` after their lifetime (the largest of the stale windows), recorded in the
    /// entry. `#[cached(stale_if_error = <secs>)]` overrides it, `= 0` turns it off. Windows
    /// longer than 49 days are cut to 49 days. Off by default.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let cache = rtc::TaggedCache::builder()
    ///     .in_local_memory(true)
    ///     .stale_if_error(Duration::from_secs(3600))
    ///     .build()
    ///     .unwrap();
    /// # let _ = cache;
    /// ```
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale.if_error = Some(window);
        self
    }

    /// The default `stale_while_revalidate` of the `#[cached]` functions that name the option
    /// (bare, `#[cached(stale_while_revalidate)]`, for this default): a call that finds its
    /// entry past its lifetime by at most `window`, with every tag current, returns it at once
    /// and refreshes it in the background. Functions that do not name the option are not
    /// affected: a background refresh needs a computation that can outlive the call (owned
    /// arguments), which only the attribute can check. Off by default.
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.stale.while_revalidate = Some(window);
        self
    }

    /// The default `timeout` of the `#[cached]` functions that name the option (bare,
    /// `#[cached(timeout)]`, for this default): when a computation takes longer and a stale
    /// value is at hand (within `stale_if_error`), the call returns it and the computation
    /// finishes and stores its result in the background. Zero turns it off. Off by default.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.stale.timeout = Some(timeout);
        self
    }

    /// Calls `hook` after every call of a `#[cached]` function that uses this cache, hit or miss,
    /// with the key, the tags, a [`CacheInfo`] and the decorator's `hook_userdata`. A panic in
    /// the hook is caught and logged; the call returns its value all the same.
    pub fn cache_hook<F>(mut self, hook: F) -> Self
    where
        F: Fn(&str, &[String], &CacheInfo, Option<&(dyn std::any::Any + Send + Sync)>)
            + Send
            + Sync
            + 'static,
    {
        self.hook = Some(Hook(std::sync::Arc::new(hook)));
        self
    }

    /// Checks the settings and makes the cache. Never connects: connections open on first use.
    ///
    /// # Errors
    /// [`ConfigError`] for an unparsable URL, an unsupported scheme, TLS without TLS support,
    /// a URL combined with host/port fields, `sentinel()` without URLs or service name or
    /// combined with another server, or a zero timeout.
    pub fn build(self) -> Result<TaggedCache, ConfigError> {
        TaggedCache::from_settings(self.settings()?)
    }

    fn settings(self) -> Result<Settings, ConfigError> {
        if self.namespace.is_empty() {
            return Err(ConfigError::Invalid("the namespace must not be empty"));
        }
        if self.socket_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(ConfigError::Invalid("timeouts must be longer than zero"));
        }
        let address_set = self.host.is_some() || self.port.is_some() || self.db.is_some();
        let fields_set =
            address_set || self.ssl || self.username.is_some() || self.password.is_some();
        if self.url.is_some() && fields_set {
            return Err(ConfigError::Contradictory(
                "url() and host()/port()/db()/ssl()/username()/password() both given; use one",
            ));
        }
        let cluster = !self.cluster_urls.is_empty();
        if cluster && (self.url.is_some() || address_set) {
            return Err(ConfigError::Contradictory(
                "cluster_urls() and url()/host()/port()/db() both given; use one",
            ));
        }
        let sentinel = self.sentinel.is_some();
        if sentinel && (cluster || self.url.is_some() || self.host.is_some() || self.port.is_some())
        {
            return Err(ConfigError::Contradictory(
                "sentinel() and url()/host()/port()/cluster_urls() both given; use one",
            ));
        }
        let remote_set = self.url.is_some() || fields_set || cluster || sentinel;
        if self.in_local_memory && remote_set {
            return Err(ConfigError::Contradictory(
                "in_local_memory(true) keeps entries in this process, but a Redis server was also given",
            ));
        }
        let storage = if self.disabled {
            Storage::Disabled
        } else if self.in_local_memory {
            Storage::Memory
        } else if cluster {
            Storage::Cluster(self.cluster_nodes()?)
        } else if let Some((urls, service)) = &self.sentinel {
            Storage::Sentinel(Box::new(self.sentinel_settings(urls, service)?))
        } else {
            Storage::Redis(Box::new(self.connection_info()?))
        };
        if self.tls.requested() && !storage.uses_tls() && !matches!(storage, Storage::Disabled) {
            return Err(ConfigError::Contradictory(
                "tls_* settings given, but the connection is not TLS (use rediss:// or ssl(true))",
            ));
        }
        let near = match (self.near_entries, &storage) {
            (None, _) => None,
            (Some(0), _) => {
                return Err(ConfigError::Invalid(
                    "near_cache(max_entries) needs at least one entry",
                ))
            }
            (Some(_), Storage::Disabled | Storage::Memory) => None,
            (Some(max_entries), _) => Some(NearSettings {
                max_entries,
                max_age: self.near_max_age.filter(|age| !age.is_zero()),
            }),
        };
        if self.max_entries == Some(0) {
            return Err(ConfigError::Invalid("max_entries needs at least one entry"));
        }
        let tls_material = self.tls.load()?;
        Ok(Settings {
            namespace: self.namespace,
            storage,
            socket_timeout: self.socket_timeout,
            connect_timeout: self.connect_timeout,
            default_lifetime: self.default_lifetime.filter(|d| !d.is_zero()),
            lifetime_for_tags: self.lifetime_for_tags.filter(|d| !d.is_zero()),
            hook: self.hook,
            tls: tls_material,
            encoding: self.encoding,
            near,
            max_entries: self.max_entries,
            stale: self.stale,
        })
    }

    fn connection_info(&self) -> Result<ConnectionInfo, ConfigError> {
        if let Some(url) = &self.url {
            return tls::secure(parse_url(url)?, false, self.tls.insecure);
        }
        let host = self.host.clone().unwrap_or_else(|| "127.0.0.1".to_owned());
        let addr = ConnectionAddr::Tcp(host, self.port.unwrap_or(6379));
        let redis = self.credentials(RedisConnectionInfo::default().set_db(self.db.unwrap_or(0)));
        let info = addr
            .into_connection_info()
            .map_err(|error| ConfigError::InvalidUrl {
                reason: error.to_string(),
            })?;
        tls::secure(info.set_redis_settings(redis), self.ssl, self.tls.insecure)
    }
}

impl TaggedCacheBuilder {
    /// `redis` with the `username()` and `password()` given, if any.
    fn credentials(&self, mut redis: RedisConnectionInfo) -> RedisConnectionInfo {
        if let Some(username) = &self.username {
            redis = redis.set_username(username);
        }
        if let Some(password) = &self.password {
            redis = redis.set_password(password);
        }
        redis
    }

    fn cluster_nodes(&self) -> Result<Vec<ConnectionInfo>, ConfigError> {
        self.cluster_urls
            .iter()
            .map(|url| {
                let info = parse_url(url)?;
                let redis = self.credentials(info.redis_settings().clone());
                tls::secure(info.set_redis_settings(redis), self.ssl, self.tls.insecure)
            })
            .collect()
    }
}

impl TaggedCacheBuilder {
    fn sentinel_settings(
        &self,
        urls: &[String],
        service: &str,
    ) -> Result<SentinelSettings, ConfigError> {
        if urls.is_empty() {
            return Err(ConfigError::Invalid(
                "sentinel() needs at least one sentinel URL",
            ));
        }
        if service.is_empty() {
            return Err(ConfigError::Invalid(
                "sentinel() needs the service name the sentinels monitor the primary under",
            ));
        }
        let parsed = urls
            .iter()
            .map(|url| parse_url(url))
            .collect::<Result<Vec<_>, _>>()?;
        if parsed.iter().any(|info| info.redis_settings().db() != 0) {
            return Err(ConfigError::Invalid(
                "sentinel URLs name no database; set the primary's with db()",
            ));
        }
        let tls_given = parsed
            .iter()
            .any(|info| matches!(info.addr(), ConnectionAddr::TcpTls { .. }));
        let tls = self.ssl || tls_given;
        let sentinels = parsed
            .into_iter()
            .map(|info| tls::secure(info, tls, self.tls.insecure))
            .collect::<Result<Vec<_>, _>>()?;
        let primary = self.credentials(RedisConnectionInfo::default().set_db(self.db.unwrap_or(0)));
        // The address is a placeholder: each lookup replaces it with the sentinels' answer.
        let placeholder = ConnectionAddr::Tcp("127.0.0.1".to_owned(), 6379)
            .into_connection_info()
            .map_err(|error| ConfigError::InvalidUrl {
                reason: error.to_string(),
            })?;
        Ok(SentinelSettings {
            sentinels,
            service: service.to_owned(),
            primary: tls::secure(
                placeholder.set_redis_settings(primary),
                tls,
                self.tls.insecure,
            )?,
        })
    }
}

fn parse_url(url: &str) -> Result<ConnectionInfo, ConfigError> {
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    match scheme {
        Some("redis" | "redis+unix" | "unix") => {}
        Some("rediss") if cfg!(feature = "tls") => {}
        Some("rediss") => return Err(ConfigError::TlsUnavailable),
        Some(other) => {
            return Err(ConfigError::InvalidUrl {
                reason: format!(
                    "unsupported scheme `{other}://`; use redis://, rediss:// or redis+unix://"
                ),
            })
        }
        None => {
            return Err(ConfigError::InvalidUrl {
                reason: "no scheme; expected redis://host:port/db".to_owned(),
            })
        }
    }
    url.into_connection_info()
        .map_err(|error| ConfigError::InvalidUrl {
            reason: error.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(builder: TaggedCacheBuilder) -> ConfigError {
        builder.settings().expect_err("settings should be refused")
    }

    #[test]
    fn unsupported_and_unparsable_urls_are_refused() {
        let builder = TaggedCacheBuilder::default;
        assert!(matches!(
            error_of(builder().url("http://localhost")),
            ConfigError::InvalidUrl { .. }
        ));
        assert!(matches!(
            error_of(builder().url("localhost:6379")),
            ConfigError::InvalidUrl { .. }
        ));
        assert!(matches!(
            error_of(builder().url("redis://localhost/notadb")),
            ConfigError::InvalidUrl { .. }
        ));
    }

    #[test]
    fn near_cache_and_max_entries_settings() {
        let builder = TaggedCacheBuilder::default;
        assert!(matches!(
            error_of(builder().near_cache(0)),
            ConfigError::Invalid(_)
        ));
        assert!(matches!(
            error_of(builder().in_local_memory(true).max_entries(0)),
            ConfigError::Invalid(_)
        ));
        let near = builder()
            .near_cache(10)
            .near_cache_max_age(Duration::from_secs(5))
            .settings()
            .unwrap()
            .near
            .unwrap();
        assert_eq!(
            (near.max_entries, near.max_age),
            (10, Some(Duration::from_secs(5)))
        );
        let memory = builder()
            .in_local_memory(true)
            .near_cache(10)
            .settings()
            .unwrap();
        assert!(memory.near.is_none(), "ignored in memory");
    }

    #[test]
    fn contradictory_settings_are_refused() {
        let builder = TaggedCacheBuilder::default;
        assert!(matches!(
            error_of(builder().url("redis://h").port(1)),
            ConfigError::Contradictory(_)
        ));
        assert!(matches!(
            error_of(builder().in_local_memory(true).url("redis://h")),
            ConfigError::Contradictory(_)
        ));
        assert!(matches!(
            error_of(builder().socket_timeout(Duration::ZERO)),
            ConfigError::Invalid(_)
        ));
    }

    #[test]
    fn sentinel_settings_that_cannot_work_are_refused() {
        let sentinel = || TaggedCacheBuilder::default().sentinel(["redis://s1:26379"], "primary");
        assert!(matches!(
            error_of(TaggedCacheBuilder::default().sentinel(Vec::<String>::new(), "primary")),
            ConfigError::Invalid(_)
        ));
        assert!(matches!(
            error_of(TaggedCacheBuilder::default().sentinel(["redis://s1:26379"], "")),
            ConfigError::Invalid(_)
        ));
        assert!(matches!(
            error_of(TaggedCacheBuilder::default().sentinel(["redis://s1:26379/2"], "primary")),
            ConfigError::Invalid(_)
        ));
        assert!(matches!(
            error_of(TaggedCacheBuilder::default().sentinel(["http://s1:26379"], "primary")),
            ConfigError::InvalidUrl { .. }
        ));
        for contradiction in [
            sentinel().url("redis://h"),
            sentinel().host("h"),
            sentinel().port(6380),
            sentinel().cluster_urls(["redis://c:7000"]),
            sentinel().in_local_memory(true),
        ] {
            assert!(matches!(
                error_of(contradiction),
                ConfigError::Contradictory(_)
            ));
        }
    }

    #[test]
    fn db_and_credentials_go_to_the_primary_and_the_urls_credentials_to_the_sentinels() {
        let settings = TaggedCacheBuilder::default()
            .sentinel(
                ["redis://:sentinel-secret@s1:26379", "redis://s2:26379"],
                "primary",
            )
            .db(3)
            .username("app")
            .password("hunter2")
            .settings()
            .unwrap();
        let Storage::Sentinel(sentinel) = &settings.storage else {
            panic!("a sentinel storage");
        };
        assert_eq!(sentinel.service, "primary");
        let primary = sentinel.primary.redis_settings();
        assert_eq!(
            (primary.db(), primary.username(), primary.password()),
            (3, Some("app"), Some("hunter2"))
        );
        let first = sentinel.sentinels[0].redis_settings();
        assert_eq!(first.password(), Some("sentinel-secret"));
        assert_eq!(sentinel.sentinels[1].redis_settings().password(), None);
        let shown = format!("{settings:?}");
        assert!(shown.contains("s1:26379") && shown.contains("`primary` db 3"));
        assert!(!shown.contains("hunter2") && !shown.contains("sentinel-secret"));
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let builder = TaggedCacheBuilder::default()
            .username("app")
            .password("hunter2");
        assert!(!format!("{builder:?}").contains("hunter2"));
        let settings = builder.clone().settings().unwrap();
        assert!(!format!("{settings:?}").contains("hunter2"));
        let url = TaggedCacheBuilder::default().url("redis://app:hunter2@localhost/");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert!(!format!("{:?}", url.settings().unwrap()).contains("hunter2"));
    }

    #[test]
    fn zero_lifetimes_mean_never_expire() {
        let settings = TaggedCacheBuilder::default()
            .default_lifetime(Some(Duration::ZERO))
            .lifetime_for_tags(Some(Duration::ZERO))
            .settings()
            .unwrap();
        assert_eq!(settings.default_lifetime, None);
        assert_eq!(settings.lifetime_for_tags, None);
    }
}
