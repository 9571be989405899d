//! The builder: every setting, and their validation into [`Settings`].

use std::fmt;
use std::time::Duration;

use crate::cache::TaggedCache;
use crate::codec::{Codec, Encoding};
use crate::error::ConfigError;
use crate::hook::{CacheInfo, Hook};
use crate::lifetime::Lifetime;

mod address;
#[cfg(test)]
mod tests;

use self::address::{Address, Connection};
use crate::settings::{NearSettings, Settings, StaleOptions, Storage};

/// Configures a [`TaggedCache`]; made by [`TaggedCache::builder`].
///
/// Every setting has a default: namespace `"default"`, Redis at `redis://127.0.0.1:6379/0`,
/// 5 s response and connect timeouts, entries living one hour, tags one day.
///
/// **Where entries live is one choice**: the last of [`url`](Self::url),
/// [`host`](Self::host)/[`port`](Self::port), [`cluster_urls`](Self::cluster_urls),
/// [`sentinel`](Self::sentinel), [`client`](Self::client),
/// [`cluster_client`](Self::cluster_client) and [`in_memory`](Self::in_memory)
/// wins. [`db`](Self::db), [`username`](Self::username), [`password`](Self::password) and
/// [`tls`](Self::tls) refine whichever Redis storage is chosen (over what a URL says), and
/// [`disabled(true)`](Self::disabled) turns any storage off.
///
/// **Lengths of time** follow one convention: a `Duration` means that length of time and a
/// zero one is refused where it cannot work; lifetimes are a [`Lifetime`]; optional behaviours
/// are off until their setter is called.
///
/// ```
/// use std::time::Duration;
/// use rtc::TaggedCache;
///
/// let cache = TaggedCache::builder()
///     .namespace("shop")
///     .url("redis://127.0.0.1:6379/0")
///     .response_timeout(Duration::from_millis(250))
///     .default_lifetime(Duration::from_secs(60))
///     .build()
///     .expect("valid settings");
/// # let _ = cache;
/// ```
#[derive(Clone)]
#[must_use = "a builder does nothing until `build()` is called"]
pub struct TaggedCacheBuilder {
    namespace: String,
    address: Address,
    connection: Connection,
    response_timeout: Duration,
    connect_timeout: Duration,
    default_lifetime: Lifetime,
    lifetime_for_tags: Lifetime,
    disabled: bool,
    hook: Option<Hook>,
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
            .field("address", &self.address)
            .field("connection", &self.connection)
            .field("response_timeout", &self.response_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("default_lifetime", &self.default_lifetime)
            .field("lifetime_for_tags", &self.lifetime_for_tags)
            .field("disabled", &self.disabled)
            .field("hook", &self.hook)
            .field("encoding", &self.encoding)
            .field("near_entries", &self.near_entries)
            .field("near_max_age", &self.near_max_age)
            .field("max_entries", &self.max_entries)
            .field("stale", &self.stale)
            .finish()
    }
}

// Beside the builder it makes, so that the cache itself does not depend on its builder.
impl TaggedCache {
    /// Starts configuring a cache.
    pub fn builder() -> TaggedCacheBuilder {
        TaggedCacheBuilder::default()
    }
}

impl Default for TaggedCacheBuilder {
    fn default() -> Self {
        Self {
            namespace: "default".to_owned(),
            address: Address::default(),
            connection: Connection::default(),
            response_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            default_lifetime: Lifetime::Default,
            lifetime_for_tags: Lifetime::Default,
            disabled: false,
            hook: None,
            encoding: Encoding::default(),
            near_entries: None,
            near_max_age: None,
            max_entries: None,
            stale: StaleOptions::default(),
        }
    }
}

/// rtc's own default lifetimes: one hour for entries, one day for tags.
const DEFAULT_ENTRY_LIFETIME: Duration = Duration::from_secs(3600);
const DEFAULT_TAG_LIFETIME: Duration = Duration::from_secs(86_400);

impl TaggedCacheBuilder {
    /// Isolates this cache's entries and tags from every other namespace on the same server.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Keeps entries on the server at this URL: `redis://[user:password@]host[:port][/db]`,
    /// `rediss://…` (TLS) or `redis+unix:///path/to/socket[?db=N]`. Replaces any storage chosen
    /// before; [`db`](Self::db), [`username`](Self::username), [`password`](Self::password)
    /// and [`tls(true)`](Self::tls) given as well override what the URL says.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.address = Address::Url(url.into());
        self
    }

    /// Keeps entries on the Redis server whose [`redis::Client`] the application already made
    /// (with the redis-rs rtc re-exports as `rtc::redis`, so that the versions match),
    /// so that its connections are configured once: rtc opens its own connections with the
    /// client's address, database, credentials and TLS parameters (and its own timeouts).
    /// Replaces any storage chosen before.
    ///
    /// ```
    /// let client = rtc::redis::Client::open("redis://127.0.0.1:6379/2").unwrap();
    /// let cache = rtc::TaggedCache::builder().client(&client).build().unwrap();
    /// # let _ = cache;
    /// ```
    pub fn client(mut self, client: &redis::Client) -> Self {
        self.address = Address::Client(Box::new(client.get_connection_info().clone()));
        self
    }

    /// Keeps entries in the Redis Cluster of the application's own [`ClusterClient`]
    /// (redis-rs), used as it is: its credentials, TLS, timeouts and retries apply, and rtc's
    /// [`db`](Self::db), [`username`](Self::username), [`password`](Self::password) and `tls*`
    /// settings are refused beside it. Replaces any storage chosen before.
    ///
    /// A `ClusterClient` does not tell its seed nodes, which the near cache needs to track
    /// every node: for [`near_cache`](Self::near_cache) on a cluster, give
    /// [`cluster_urls`](Self::cluster_urls) instead (`build()` says so).
    ///
    /// [`ClusterClient`]: redis::cluster::ClusterClient
    ///
    /// ```
    /// let client = rtc::redis::cluster::ClusterClient::new(["redis://10.0.0.1:7000"]).unwrap();
    /// let cache = rtc::TaggedCache::builder().cluster_client(&client).build().unwrap();
    /// # let _ = cache;
    /// ```
    pub fn cluster_client(mut self, client: &redis::cluster::ClusterClient) -> Self {
        self.address = Address::ClusterClient(Box::new(client.clone()));
        self
    }

    /// Keeps entries in a Redis Cluster, found through these seed nodes (`redis://host:port`
    /// each; the rest of the topology is discovered). Entries and tags spread over every shard.
    /// `username()` and `password()` apply to every node. Replaces any storage chosen before.
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
        self.address = Address::Cluster(urls.into_iter().map(Into::into).collect());
        self
    }

    /// Keeps entries on a primary with replicas watched by Redis Sentinel: the sentinels at
    /// `urls` (`redis://[user:password@]host:port` each, usually port 26379) name the current
    /// primary of `service_name` (the name in their `sentinel monitor` line), and every call
    /// goes to it. When the primary fails, calls miss until the sentinels have promoted a
    /// replica; then the next call asks them again and caching resumes, without a restart.
    /// Replaces any storage chosen before.
    ///
    /// `db()`, `username()` and `password()` apply to the primary; the sentinels' own
    /// credentials go in their URLs. TLS (`rediss://` sentinel URLs or `tls(true)`) applies to
    /// the sentinels and the primary alike, with the same `tls_*` settings; a primary's
    /// certificate must then name the address the sentinels give (usually an IP address).
    /// Not supported: TLS to the sentinels but not to the primary (or the reverse), and reading
    /// from replicas (every call goes to the primary).
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
        self.address = Address::Sentinel(urls, service_name.into());
        self
    }

    /// Keeps entries on the Redis server at this host name or address (port 6379 unless
    /// [`port`](Self::port) says otherwise). Replaces any storage chosen before, other than a
    /// `port()` given just before.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.address = self.address.with_host(host.into());
        self
    }

    /// Keeps entries on the Redis server at this TCP port (host `127.0.0.1` unless
    /// [`host`](Self::host) says otherwise). Replaces any storage chosen before, other than a
    /// `host()` given just before.
    pub fn port(mut self, port: u16) -> Self {
        self.address = self.address.with_port(port);
        self
    }

    /// Keeps entries in this process's memory: no Redis is needed, and the semantics (tags,
    /// lifetimes, locks, stale windows) are the same. Replaces any storage chosen before.
    ///
    /// ```
    /// let cache = rtc::TaggedCache::builder().in_memory().build().unwrap();
    /// # let _ = cache;
    /// ```
    pub fn in_memory(mut self) -> Self {
        self.address = Address::Memory;
        self
    }

    /// `true`: whatever the storage, every `get` misses and every write does nothing; the API
    /// is unchanged (a switch for configuration files and tests). `false`, the default, leaves
    /// the storage chosen as it is.
    pub fn disabled(mut self, disabled: bool) -> Self {
        self.disabled = disabled;
        self
    }

    /// Database number on a Redis server or behind sentinels (default 0, or the URL's). A
    /// Redis Cluster has only database 0: another number is refused by `build()`.
    pub fn db(mut self, db: i64) -> Self {
        self.connection.db = Some(db);
        self
    }

    /// `true`: connect with TLS, also to a `redis://` URL or a `host()`. The default, `false`,
    /// uses TLS only where a URL says `rediss://`. Needs the `tls` feature.
    pub fn tls(mut self, tls: bool) -> Self {
        self.connection.tls = tls;
        self
    }

    /// Trusts the CA certificates in this PEM file (instead of the system's roots) for TLS
    /// connections. Needs the `tls` feature; the file is read by `build()`.
    pub fn tls_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.connection.tls_options.ca_file = Some(path.into());
        self
    }

    /// Presents this client certificate and key (PEM files) to servers that ask for one
    /// (`tls-auth-clients yes`). Needs the `tls` feature; the files are read by `build()`.
    pub fn tls_client_cert(
        mut self,
        cert: impl Into<std::path::PathBuf>,
        key: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.connection.tls_options.client_cert = Some((cert.into(), key.into()));
        self
    }

    /// **Dangerous**: accepts any server certificate, so anyone on the path can read and change
    /// the traffic. Only for tests against self-signed servers. Off by default.
    pub fn tls_insecure_skip_verify(mut self, insecure: bool) -> Self {
        self.connection.tls_options.insecure = insecure;
        self
    }

    /// ACL user name (over the URL's, if it names one).
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.connection.username = Some(username.into());
        self
    }

    /// Password of the ACL user, or of the default user (over the URL's, if it names one).
    /// Never logged, never in `Debug`.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.connection.password = Some(password.into());
        self
    }

    /// Longest wait for one reply before the call gives up and counts as a miss (default 5 s;
    /// zero is refused by `build()`).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Longest wait for a connection to open (default 5 s; zero is refused by `build()`).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Lifetime of an entry written with [`Lifetime::Default`] (or by a `#[cached]` function
    /// without `lifetime`): a `Duration`, or [`Lifetime::Never`]. `Lifetime::Default` here is
    /// rtc's own default, one hour. A zero `Duration` is refused by `build()`.
    pub fn default_lifetime(mut self, lifetime: impl Into<Lifetime>) -> Self {
        self.default_lifetime = lifetime.into();
        self
    }

    /// Lifetime of a tag's version, counted from its creation or its last invalidation: a
    /// `Duration`, or [`Lifetime::Never`]. `Lifetime::Default` here is rtc's own default, one
    /// day. An entry whose tag expired misses. A zero `Duration` is refused by `build()`.
    pub fn lifetime_for_tags(mut self, lifetime: impl Into<Lifetime>) -> Self {
        self.lifetime_for_tags = lifetime.into();
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
    /// use rtc::{Codec, Lifetime, TaggedCache};
    ///
    /// let cache = TaggedCache::builder()
    ///     .in_memory()
    ///     .codec(Codec::default())
    ///     .build()
    ///     .unwrap();
    /// cache.set("answer", &42, ["numbers"], Lifetime::Default);
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
    /// use rtc::{Lifetime, TaggedCache};
    ///
    /// let cache = TaggedCache::builder()
    ///     .in_memory()
    ///     .compress_above(1024)
    ///     .build()
    ///     .unwrap();
    /// let report = "quarterly figures ".repeat(200);
    /// cache.set("report", &report, ["reports"], Lifetime::Default);
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

    /// The longest a near entry is kept, whatever its lifetime in Redis (without this setting,
    /// as long as the entry and its tags live). A bound on how long a value whose invalidation
    /// message was delayed may be served. A zero `max_age` is refused by `build()`.
    pub fn near_cache_max_age(mut self, max_age: Duration) -> Self {
        self.near_max_age = Some(max_age);
        self
    }

    /// Bounds the in-memory backend ([`in_memory()`](Self::in_memory)) to about `max_entries` entries,
    /// evicting the least useful ones (quick_cache's policy) beyond it; without it only
    /// lifetimes bound it. The same bound applies to the decoded values the in-memory backend
    /// keeps for `#[cached]` functions (10,000 by default). Ignored for Redis (bound Redis
    /// with `maxmemory`).
    ///
    /// ```
    /// use rtc::{Lifetime, TaggedCache, NO_TAGS};
    ///
    /// let cache = TaggedCache::builder().in_memory().max_entries(1_000).build().unwrap();
    /// for n in 0..5_000 {
    ///     cache.set(n.to_string(), &n, NO_TAGS, Lifetime::Default);
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
    /// longer than 49 days are cut to 49 days. Off by default; a zero `window` is refused by
    /// `build()`.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let cache = rtc::TaggedCache::builder()
    ///     .in_memory()
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
    /// arguments), which only the attribute can check. Off by default; a zero `window` is refused by `build()`.
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.stale.while_revalidate = Some(window);
        self
    }

    /// The default `stale_if_slow` of the `#[cached]` functions that name the option (bare,
    /// `#[cached(stale_if_slow)]`, for this default): when a computation takes longer than
    /// `after` and a stale value is at hand (within `stale_if_error`), the call returns it and
    /// the computation finishes and stores its result in the background. Off by default; a
    /// zero `after` is refused by `build()`. (The seed called this `timeout`; it is not a
    /// socket timeout, which is [`response_timeout`](Self::response_timeout).)
    pub fn stale_if_slow(mut self, after: Duration) -> Self {
        self.stale.timeout = Some(after);
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
    /// [`ConfigError`] for settings that cannot work: an unparsable URL or unsupported scheme,
    /// TLS without the `tls` feature, `tls_*` files that cannot be read or that are given for a
    /// connection without TLS, `sentinel()` without URLs or service name, a database other than
    /// 0 on a cluster, an empty namespace, a zero timeout, lifetime, window or near age.
    pub fn build(self) -> Result<TaggedCache, ConfigError> {
        TaggedCache::from_settings(self.settings()?)
    }

    fn settings(self) -> Result<Settings, ConfigError> {
        if self.namespace.is_empty() {
            return Err(ConfigError::Invalid("the namespace must not be empty"));
        }
        if self.response_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(ConfigError::Invalid("timeouts must be longer than zero"));
        }
        if self.default_lifetime.is_zero() || self.lifetime_for_tags.is_zero() {
            return Err(ConfigError::Invalid(
                "a lifetime of zero would expire everything as it is written; use Lifetime::Never for no expiry",
            ));
        }
        if self.near_max_age.is_some_and(|age| age.is_zero()) {
            return Err(ConfigError::Invalid(
                "near_cache_max_age must be longer than zero",
            ));
        }
        if self.stale.has_zero_window() {
            return Err(ConfigError::Invalid(
                "stale_if_error, stale_while_revalidate and stale_if_slow must be longer than zero; leave them unset to keep them off",
            ));
        }
        if self.near_entries == Some(0) {
            return Err(ConfigError::Invalid(
                "near_cache(max_entries) needs at least one entry",
            ));
        }
        if self.max_entries == Some(0) {
            return Err(ConfigError::Invalid("max_entries needs at least one entry"));
        }
        let storage = match self.disabled {
            true => Storage::Disabled,
            false => self.address.storage(&self.connection)?,
        };
        let near = match (self.near_entries, &storage) {
            (None, _) | (Some(_), Storage::Disabled | Storage::Memory) => None,
            (Some(max_entries), _) => Some(NearSettings {
                max_entries,
                max_age: self.near_max_age,
            }),
        };
        Ok(Settings {
            namespace: self.namespace,
            storage,
            socket_timeout: self.response_timeout,
            connect_timeout: self.connect_timeout,
            default_lifetime: self.default_lifetime.resolve(Some(DEFAULT_ENTRY_LIFETIME)),
            lifetime_for_tags: self.lifetime_for_tags.resolve(Some(DEFAULT_TAG_LIFETIME)),
            hook: self.hook,
            tls: self.connection.tls_options.load()?,
            encoding: self.encoding,
            near,
            max_entries: self.max_entries,
            stale: self.stale,
        })
    }
}
