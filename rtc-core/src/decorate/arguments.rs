//! What a decorated function's arguments must be to make its key, and how they are shown to the
//! hook when `key = ...` makes the key instead.

use serde::Serialize;

/// What an argument of a `#[cached]` function needs to be part of its key.
///
/// Implemented for every `Serialize` type; a trait of its own so that the error for one that is
/// not says what to do.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a cached function's key: it does not implement `serde::Serialize`",
    label = "not `Serialize`",
    note = "leave the argument out of the key with `skip(<argument>)` in `#[cached(...)]`, give the whole key with `key = ...`, or derive `serde::Serialize` for its type"
)]
pub trait KeyArgument {
    /// The argument as JSON.
    fn to_json(&self) -> serde_json::Result<String>;

    /// The argument as JSON, appended to `out`.
    fn write_json<W: std::io::Write>(&self, out: &mut W) -> serde_json::Result<()>;
}

impl<T: Serialize + ?Sized> KeyArgument for T {
    fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string(self)
    }

    fn write_json<W: std::io::Write>(&self, out: &mut W) -> serde_json::Result<()> {
        serde_json::to_writer(out, self)
    }
}

/// An argument of a function with `key = ...`, which need not be `Serialize`: shown to the hook
/// as JSON when it is. `(&OptionalArgument(&arg)).argument_json()` picks
/// [`SerializableArgument`] when it applies and [`UnserializableArgument`] (one more `&`) else.
pub struct OptionalArgument<'a, T: ?Sized>(pub &'a T);

/// The JSON of a `Serialize` argument.
pub trait SerializableArgument {
    /// The argument as JSON; `None` when serializing it fails.
    fn argument_json(&self) -> Option<String>;
}

impl<T: Serialize + ?Sized> SerializableArgument for OptionalArgument<'_, T> {
    fn argument_json(&self) -> Option<String> {
        serde_json::to_string(self.0).ok()
    }
}

/// The JSON of any other argument: none.
pub trait UnserializableArgument {
    /// Always `None`.
    fn argument_json(&self) -> Option<String> {
        None
    }
}

impl<T: ?Sized> UnserializableArgument for &OptionalArgument<'_, T> {}

#[cfg(test)]
mod tests {
    use super::*;

    struct Opaque;

    #[test]
    #[allow(
        clippy::needless_borrow,
        reason = "the borrow is what picks the impl for an unserializable argument"
    )]
    fn an_argument_is_shown_only_when_it_serializes() {
        assert_eq!(
            (&OptionalArgument(&"ann")).argument_json().as_deref(),
            Some("\"ann\"")
        );
        assert_eq!((&OptionalArgument(&Opaque)).argument_json(), None);
    }
}
