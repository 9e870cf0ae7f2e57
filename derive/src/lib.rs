//! `#[derive(Tree)]` for [cotangent](https://docs.rs/cotangent): implements
//! `cotangent::Tree` for structs and enums whose fields are trees (tensors,
//! `Vec`s, tuples, other derived types...).
//!
//! - Named fields are flattened in declaration order and named by their field
//!   name (`layers.0.weight`); tuple-struct fields by their index.
//! - Enum variants contribute their fields; the variant name is not part of a
//!   path. A variant with a single unnamed field is transparent (its content
//!   takes the enum's own path), other unnamed fields are named by index and
//!   named fields by name.
//! - A field marked `#[tree(skip)]` is not a leaf: it is cloned into the
//!   rebuilt value (use it for sizes, flags and other configuration).
//! - A type parameter used in a leaf field gets a `Tree` bound; one used only in
//!   skipped fields gets a `Clone` bound.
//!
//! The generated code names the trait `::cotangent::Tree`; use the macro
//! through `cotangent::Tree`, which re-exports it.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::{parse_macro_input, parse_quote, Data, DeriveInput, Field, Fields, Index};

/// Derives `cotangent::Tree`. See the crate documentation for the rules.
#[proc_macro_derive(Tree, attributes(tree))]
pub fn derive_tree(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(input) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Whether a field carries `#[tree(skip)]`; any other `tree(...)` content is an error.
fn is_skipped(field: &Field) -> syn::Result<bool> {
    let mut skip = false;
    for attr in &field.attrs {
        if !attr.path().is_ident("tree") {
            continue;
        }
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("skip") {
                skip = true;
                Ok(())
            } else {
                Err(meta.error("unknown tree attribute; the only one is `#[tree(skip)]`"))
            }
        })?;
    }
    Ok(skip)
}

/// One field as the generated code sees it: how to reach it, its path name, and whether it is skipped.
struct FieldInfo {
    /// Expression of type `&FieldType`.
    access: TokenStream2,
    /// Member used to build the value (`name` or index).
    member: syn::Member,
    /// Path component, or `None` for a transparent (newtype variant) field.
    name: Option<String>,
    skip: bool,
}

fn fields_info(fields: &Fields, in_enum: bool) -> syn::Result<Vec<FieldInfo>> {
    let transparent = in_enum && matches!(fields, Fields::Unnamed(u) if u.unnamed.len() == 1);
    let mut out = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        let skip = is_skipped(f)?;
        let (member, name, binding) = match &f.ident {
            Some(id) => (
                syn::Member::Named(id.clone()),
                id.to_string().trim_start_matches("r#").to_string(),
                format_ident!("__f_{}", id),
            ),
            None => (
                syn::Member::Unnamed(Index { index: i as u32, span: Span::call_site() }),
                i.to_string(),
                format_ident!("__f{}", i),
            ),
        };
        // A reference to the field: match bindings already are references.
        let access = if in_enum { quote!(#binding) } else { quote!(&self.#member) };
        out.push(FieldInfo { access, member, name: if transparent { None } else { Some(name) }, skip });
    }
    Ok(out)
}

/// The three method bodies for one set of fields.
fn bodies(fields: &[FieldInfo], ctor: TokenStream2) -> (TokenStream2, TokenStream2, TokenStream2) {
    let mut flatten = Vec::new();
    let mut named = Vec::new();
    let mut build = Vec::new();
    for f in fields {
        let access = &f.access;
        let member = &f.member;
        if f.skip {
            build.push(quote!(#member: ::core::clone::Clone::clone(#access)));
            continue;
        }
        flatten.push(quote!(::cotangent::Tree::flatten_into(#access, __out);));
        let path = match &f.name {
            Some(n) => quote!(&::cotangent::tree::join_path(__prefix, #n)),
            None => quote!(__prefix),
        };
        named.push(quote!(::cotangent::Tree::named_leaves_into(#access, #path, __out);));
        build.push(quote!(#member: ::cotangent::Tree::rebuild(#access, __leaves)));
    }
    (quote!(#(#flatten)*), quote!(#(#named)*), quote!(#ctor { #(#build),* }))
}

/// The pattern that binds every field of a variant to the names `bodies` uses.
fn pattern(path: TokenStream2, fields: &Fields) -> TokenStream2 {
    let binds = fields.iter().enumerate().map(|(i, f)| {
        let (member, binding) = match &f.ident {
            Some(id) => (syn::Member::Named(id.clone()), format_ident!("__f_{}", id)),
            None => {
                (syn::Member::Unnamed(Index { index: i as u32, span: Span::call_site() }), format_ident!("__f{}", i))
            }
        };
        quote!(#member: #binding)
    });
    quote!(#path { #(#binds),* })
}

/// Whether a token stream contains the identifier `id` anywhere.
fn uses_ident(ts: TokenStream2, id: &syn::Ident) -> bool {
    ts.into_iter().any(|t| match t {
        proc_macro2::TokenTree::Ident(i) => &i == id,
        proc_macro2::TokenTree::Group(g) => uses_ident(g.stream(), id),
        _ => false,
    })
}

fn expand(mut input: DeriveInput) -> syn::Result<TokenStream2> {
    let name = input.ident.clone();
    // Bounds like serde's: a type parameter used by a leaf field must be a Tree; one used
    // only by skipped fields must be Clone.
    let type_params: Vec<_> = input.generics.type_params().map(|p| p.ident.clone()).collect();
    let mut leaf_types = Vec::new();
    let mut skip_types = Vec::new();
    let all_fields: Vec<&Field> = match &input.data {
        Data::Struct(s) => s.fields.iter().collect(),
        Data::Enum(e) => e.variants.iter().flat_map(|v| v.fields.iter()).collect(),
        Data::Union(_) => Vec::new(),
    };
    for f in all_fields {
        if is_skipped(f)? {
            skip_types.push(f.ty.clone());
        } else {
            leaf_types.push(f.ty.clone());
        }
    }
    let mentions = |tys: &[syn::Type], p: &syn::Ident| tys.iter().any(|t| uses_ident(quote!(#t), p));
    let bounds: Vec<syn::WherePredicate> = type_params
        .iter()
        .filter_map(|p| {
            if mentions(&leaf_types, p) {
                Some(parse_quote!(#p: ::cotangent::Tree))
            } else if mentions(&skip_types, p) {
                Some(parse_quote!(#p: ::core::clone::Clone))
            } else {
                None
            }
        })
        .collect();
    input.generics.make_where_clause().predicates.extend(bounds);
    let (impl_g, ty_g, where_c) = input.generics.split_for_impl();
    let (flatten, named, rebuild) = match &input.data {
        Data::Struct(s) => {
            let info = fields_info(&s.fields, false)?;
            bodies(&info, quote!(Self))
        }
        Data::Enum(e) => {
            let mut fl = Vec::new();
            let mut nm = Vec::new();
            let mut rb = Vec::new();
            for v in &e.variants {
                let vname = &v.ident;
                let info = fields_info(&v.fields, true)?;
                let (f, n, r) = bodies(&info, quote!(Self::#vname));
                let pat = pattern(quote!(Self::#vname), &v.fields);
                fl.push(quote!(#pat => { #f }));
                nm.push(quote!(#pat => { #n }));
                rb.push(quote!(#pat => { #r }));
            }
            let unreachable = if e.variants.is_empty() { quote!(_ => unreachable!(),) } else { quote!() };
            (
                quote!(match self { #(#fl)* #unreachable }),
                quote!(match self { #(#nm)* #unreachable }),
                quote!(match self { #(#rb)* #unreachable }),
            )
        }
        Data::Union(u) => return Err(syn::Error::new(u.union_token.span, "Tree cannot be derived for a union")),
    };
    Ok(quote! {
        #[automatically_derived]
        #[allow(unused_variables, non_shorthand_field_patterns)]
        impl #impl_g ::cotangent::Tree for #name #ty_g #where_c {
            fn flatten_into(&self, __out: &mut ::std::vec::Vec<::cotangent::Tensor>) {
                #flatten
            }
            fn rebuild(
                &self,
                __leaves: &mut dyn ::core::iter::Iterator<Item = ::cotangent::Tensor>,
            ) -> Self {
                #rebuild
            }
            fn named_leaves_into(
                &self,
                __prefix: &str,
                __out: &mut ::std::vec::Vec<(::std::string::String, ::cotangent::Tensor)>,
            ) {
                #named
            }
        }
    })
}
