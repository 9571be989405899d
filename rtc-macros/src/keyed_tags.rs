//! Whether a function's tags are made from its key arguments alone, so that the same key always
//! means the same tags: then a call can look its near entry up before it builds its tags (most
//! of a near hit's cost is their text).
//!
//! Only what can be read off the tokens counts: every tag a `format!` whose arguments, inline
//! (`{id}`) or after the string (`"{}", user.id`), are key arguments or fields of them, or a
//! string literal (`"users"`, `"users".to_string()`, `String::from("users")`). A call,
//! a method, a constant, `self` or a skipped argument in a tag, a width or a precision taken
//! from an argument (`{:w$}`), or a `key = ...` (which need not name every argument a tag uses)
//! and the function builds its tags on every call, as before.

use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, Lit, Token};

/// True when each of `tags` (one tag, or an array of them) is made from `key_args` alone.
pub(crate) fn follow_from<'a>(tags: &Expr, key_args: impl Iterator<Item = &'a Ident>) -> bool {
    let key_args: Vec<String> = key_args.map(ToString::to_string).collect();
    match tags {
        Expr::Array(array) => {
            !array.elems.is_empty() && array.elems.iter().all(|tag| tag_from(tag, &key_args))
        }
        tag => tag_from(tag, &key_args),
    }
}

/// One tag: a `format!` of the key, or a string literal.
fn tag_from(tag: &Expr, key_args: &[String]) -> bool {
    match tag {
        Expr::Macro(mac) if mac.mac.path.is_ident("format") => {
            formatted_from(mac.mac.tokens.clone(), key_args)
        }
        tag => literal_text(tag),
    }
}

/// `"users"`, `"users".to_string()` (or `.to_owned()`, `.into()`), `String::from("users")`.
fn literal_text(tag: &Expr) -> bool {
    let is_str =
        |expr: &Expr| matches!(expr, Expr::Lit(literal) if matches!(literal.lit, Lit::Str(_)));
    match tag {
        Expr::MethodCall(call) => {
            call.args.is_empty()
                && call.turbofish.is_none()
                && ["to_string", "to_owned", "into"].contains(&call.method.to_string().as_str())
                && is_str(&call.receiver)
        }
        Expr::Call(call) => {
            let from_string = matches!(&*call.func, Expr::Path(path)
                if path.qself.is_none()
                    && path.path.segments.len() == 2
                    && path.path.segments[0].ident == "String"
                    && path.path.segments[1].ident == "from");
            from_string && call.args.len() == 1 && is_str(&call.args[0])
        }
        tag => is_str(tag),
    }
}

/// A `format!`'s tokens: a string literal, then arguments, each from the key.
fn formatted_from(tokens: proc_macro2::TokenStream, key_args: &[String]) -> bool {
    let Ok(parts) = Punctuated::<Expr, Token![,]>::parse_terminated.parse2(tokens) else {
        return false;
    };
    let mut parts = parts.into_iter();
    let Some(Expr::Lit(literal)) = parts.next() else {
        return false;
    };
    let Lit::Str(template) = literal.lit else {
        return false;
    };
    let mut named = Vec::new();
    for part in parts {
        let value = match part {
            Expr::Assign(assign) => {
                let Some(name) = plain_ident(&assign.left) else {
                    return false;
                };
                named.push(name);
                *assign.right
            }
            value => value,
        };
        if !from_key(&value, key_args) {
            return false;
        }
    }
    captures(&template.value()).is_some_and(|captured| {
        captured
            .iter()
            .all(|name| named.contains(name) || key_args.contains(name))
    })
}

/// A key argument, a field of one (`user.id`), a reference to either, or a literal.
fn from_key(value: &Expr, key_args: &[String]) -> bool {
    match value {
        Expr::Path(_) => plain_ident(value).is_some_and(|name| key_args.contains(&name)),
        Expr::Field(field) => from_key(&field.base, key_args),
        Expr::Reference(reference) => from_key(&reference.expr, key_args),
        Expr::Paren(inner) => from_key(&inner.expr, key_args),
        Expr::Lit(_) => true,
        _ => false,
    }
}

fn plain_ident(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Path(path) if path.qself.is_none() => path.path.get_ident().map(ToString::to_string),
        _ => None,
    }
}

/// The names a format string captures or names (`{id}`, `{id:?}`, `{name}` of `name = ...`);
/// `None` when a width or precision is taken from an argument, or the string is malformed.
fn captures(template: &str) -> Option<Vec<String>> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        let after = &rest[open + 1..];
        if rest[open..].starts_with("{{") || rest[open..].starts_with("}}") {
            rest = &after[1..];
            continue;
        }
        if rest[open..].starts_with('}') {
            return None;
        }
        let close = after.find('}')?;
        let placeholder = &after[..close];
        let (argument, spec) = placeholder.split_once(':').unwrap_or((placeholder, ""));
        if spec.contains(['$', '*']) {
            return None;
        }
        let argument = argument.trim();
        let positional = argument.is_empty() || argument.bytes().all(|b| b.is_ascii_digit());
        if !positional {
            names.push(argument.trim_start_matches("r#").to_owned());
        }
        rest = &after[close + 1..];
    }
    Some(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::format_ident;
    use syn::parse_quote;

    fn follows(tags: Expr) -> bool {
        let key_args = [format_ident!("id"), format_ident!("user")];
        follow_from(&tags, key_args.iter())
    }

    #[test]
    fn tags_formatted_from_key_arguments_follow_from_the_key() {
        assert!(follows(parse_quote!([format!("user:{id}")])));
        assert!(follows(parse_quote!([
            format!("user:{id:?}"),
            format!("{{x}}")
        ])));
        assert!(follows(parse_quote!([format!("u:{}:{}", id, user.org.id)])));
        assert!(follows(parse_quote!([format!(
            "u:{0}:{n}",
            &id,
            n = user.id
        )])));
        assert!(follows(parse_quote!([format!("u:{:>8}", 7)])));
        assert!(follows(parse_quote!([
            format!("user:{id}"),
            "users".to_string()
        ])));
        assert!(follows(parse_quote!([
            "users",
            "all".to_owned(),
            String::from("x")
        ])));
        assert!(follows(parse_quote!("users")));
        assert!(follows(parse_quote!(format!("user:{id}"))));
    }

    #[test]
    fn anything_else_in_a_tag_does_not() {
        assert!(!follows(parse_quote!([format!("user:{other}")])));
        assert!(!follows(parse_quote!([format!("user:{}", self.id)])));
        assert!(!follows(parse_quote!([format!("user:{}", id.next())])));
        assert!(!follows(parse_quote!([format!("user:{}", PREFIX)])));
        assert!(!follows(parse_quote!([format!("user:{}", tenant())])));
        assert!(!follows(parse_quote!([format!("user:{id:w$}", w = 4)])));
        assert!(!follows(parse_quote!([format!("user:{id:.*}")])));
        assert!(!follows(parse_quote!([
            format!("user:{id}"),
            name.to_owned()
        ])));
        assert!(!follows(parse_quote!(["a".repeat(2)])));
        assert!(!follows(parse_quote!([other::String::from("x")])));
        assert!(!follows(parse_quote!(tags_of(id))));
        assert!(!follows(parse_quote!([])));
        assert!(!follows(parse_quote!([format!(TEMPLATE, id)])));
        assert!(!follows(parse_quote!([format!("unclosed {id")])));
    }
}
