//! TLS settings: a custom CA, a client certificate, and the (dangerous) skip-verify switch, and
//! the files they name, read when the cache is built.

use std::path::{Path, PathBuf};

use crate::error::ConfigError;

/// What the builder was told about TLS.
#[derive(Clone, Debug, Default)]
pub(crate) struct TlsOptions {
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub insecure: bool,
}

/// TLS material loaded at build time, ready for connections.
#[derive(Clone, Default)]
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
pub(crate) struct TlsMaterial {
    pub root_cert: Option<Vec<u8>>,
    /// Certificate and key, PEM.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl TlsOptions {
    /// True when any TLS option was set.
    pub(crate) fn requested(&self) -> bool {
        self.ca_file.is_some() || self.client_cert.is_some() || self.insecure
    }

    /// Reads the files named, so that a missing file is a build-time error.
    pub(crate) fn load(&self) -> Result<TlsMaterial, ConfigError> {
        let client = match &self.client_cert {
            Some((cert, key)) => Some((read(cert)?, read(key)?)),
            None => None,
        };
        Ok(TlsMaterial {
            root_cert: self.ca_file.as_deref().map(read).transpose()?,
            client,
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|error| ConfigError::TlsFile {
        path: path.to_owned(),
        reason: error.to_string(),
    })
}
