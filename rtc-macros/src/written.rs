//! Code as a person writes it (`Repo<T>`, `self.cache`), for messages and for the type names
//! that go into keys: `quote`'s own printing puts a space between every two tokens.

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use quote::ToTokens;

/// `tokens` printed with a space only between two words and after a comma or semicolon.
pub(crate) fn written(tokens: &impl ToTokens) -> String {
    let mut out = String::new();
    write(tokens.to_token_stream(), &mut out);
    out
}

fn write(tokens: TokenStream, out: &mut String) {
    let mut previous_is_word = false;
    for token in tokens {
        let is_word = matches!(token, TokenTree::Ident(_) | TokenTree::Literal(_));
        if is_word && previous_is_word {
            out.push(' ');
        }
        match &token {
            TokenTree::Group(group) => {
                let (open, close) = match group.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::None => ("", ""),
                };
                out.push_str(open);
                write(group.stream(), out);
                out.push_str(close);
            }
            TokenTree::Punct(punct) => {
                out.push(punct.as_char());
                if matches!(punct.as_char(), ',' | ';') {
                    out.push(' ');
                }
            }
            other => out.push_str(&other.to_string()),
        }
        previous_is_word = is_word;
    }
}

#[cfg(test)]
mod tests {
    use super::written;

    #[test]
    fn types_and_paths_read_as_written() {
        let ty: syn::Type = syn::parse_quote!(Repo<'a, T, [u8; 4]>);
        assert_eq!(written(&ty), "Repo<'a, T, [u8; 4]>");
        let ty: syn::Type = syn::parse_quote!(&'a mut dyn Fn(u8) -> u8);
        assert_eq!(written(&ty), "&'a mut dyn Fn(u8)->u8");
        let expr: syn::Expr = syn::parse_quote!(self.cache);
        assert_eq!(written(&expr), "self.cache");
    }
}
