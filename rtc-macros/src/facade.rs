//! Where the generated code finds the facade crate: it may be a dependency under another name
//! (`cache = { package = "redis-tagged-cache", .. }`), or reached through a re-export.

use proc_macro2::{Span, TokenStream};
use proc_macro_crate::{crate_name, FoundCrate};
use quote::quote;
use syn::{Ident, Path};

/// The facade's package name on crates.io; its library is `rtc`.
const PACKAGE: &str = "redis-tagged-cache";

/// The path of the facade's `__private` module: under `crate = <path>` when given, else under
/// the name the calling crate's `Cargo.toml` gives the dependency, else `::rtc`.
pub(crate) fn private_path(written: Option<&Path>) -> TokenStream {
    let facade = match written {
        Some(path) => quote!(#path),
        None => found_path(),
    };
    quote!(#facade::__private)
}

fn found_path() -> TokenStream {
    match crate_name(PACKAGE) {
        // A dependency under a name of its own (`cache = { package = "redis-tagged-cache" }`).
        Ok(FoundCrate::Name(name)) if name != PACKAGE.replace('-', "_") => {
            let name = Ident::new(&name, Span::call_site());
            quote!(::#name)
        }
        // Under the package's own name, proc-macro-crate answers the package's name, but the
        // crate is known by its library's, `rtc`; so are the facade's own tests and doc tests
        // (`Itself`). Without a `Cargo.toml` to read, `rtc` is the best guess too.
        Ok(FoundCrate::Name(_) | FoundCrate::Itself) | Err(_) => quote!(::rtc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_path_wins_and_the_dependency_is_found_by_its_package() {
        let written: Path = syn::parse_quote!(my::reexport);
        assert_eq!(
            private_path(Some(&written)).to_string(),
            "my :: reexport :: __private"
        );
        // This crate's dev-dependency on the facade is named `rtc`.
        assert_eq!(private_path(None).to_string(), ":: rtc :: __private");
    }
}
