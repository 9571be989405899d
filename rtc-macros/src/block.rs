//! The `impl` block a `#[cached]` function is declared in, as the expansion of its functions
//! sees it: a model only (`impl_block.rs` expands the block).

use syn::{Generics, Path, Type};

use crate::written::written;

/// The `impl` block a `#[cached]` function is declared in.
pub(crate) struct ImplBlock {
    /// The self type as written.
    pub(crate) self_ty: Type,
    /// The trait, for a trait impl.
    pub(crate) trait_: Option<Path>,
    /// The block's generic parameters (and `where` clause).
    pub(crate) generics: Generics,
}

impl ImplBlock {
    /// The self type as written: `Repo<T>`.
    pub(crate) fn impl_type(&self) -> String {
        written(&self.self_ty)
    }

    /// What names the block in keys: `Repo<T>`, or `<PgRepo as UserRepo>` for a trait impl.
    pub(crate) fn owner(&self) -> String {
        match &self.trait_ {
            Some(trait_) => format!("<{} as {}>", written(&self.self_ty), written(trait_)),
            None => written(&self.self_ty),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_read_as_written() {
        let block = ImplBlock {
            self_ty: syn::parse_quote!(PgRepo<T>),
            trait_: Some(syn::parse_quote!(repo::UserRepo)),
            generics: Generics::default(),
        };
        assert_eq!(block.owner(), "<PgRepo<T> as repo::UserRepo>");
        assert_eq!(block.impl_type(), "PgRepo<T>");
    }
}
