//! rtc facade.
pub use rtc_core::*;
