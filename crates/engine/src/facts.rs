//! The catalog facts placement rules read per candidate ([`Facts`]), in columns indexed by a
//! "fact index": a model item's index for the items the model knows, then the catalog items it
//! does not know (so strategies that reach past the model, such as frequently bought together,
//! are filtered by the same rules). Strings (categories, genres, string attributes) are
//! interned as symbols, so comparing them per candidate is comparing numbers.

use marquee_domain::Item;
use std::collections::HashMap;

/// A symbol no string of the catalog has (a rule's literal that no item carries).
pub(crate) const NO_SYMBOL: u32 = u32::MAX;

/// The type of a rule operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Str,
    Num,
    Bool,
    /// A list of strings (`genres`, list attributes).
    List,
}

impl Type {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Type::Str => "a string",
            Type::Num => "a number",
            Type::Bool => "a boolean",
            Type::List => "a list of strings",
        }
    }
}

/// One attribute value of one item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Attr {
    Missing,
    Num(f64),
    Sym(u32),
    Bool(bool),
    /// A range of [`Facts::lists`].
    List(u32, u32),
}

/// One attribute key of the catalog: its type (when every item that has it agrees) and its
/// values per fact index.
#[derive(Debug)]
pub(crate) struct AttrColumn {
    pub(crate) ty: Result<Type, String>,
    pub(crate) values: Vec<Attr>,
}

/// Catalog facts in columns, by fact index.
#[derive(Debug, Default)]
pub(crate) struct Facts {
    /// Interned strings and their symbols.
    pub(crate) symbols: HashMap<String, u32>,
    pub(crate) names: Vec<String>,
    pub(crate) category: Vec<u32>,
    /// Ranges of `lists` per item.
    pub(crate) genres: Vec<(u32, u32)>,
    pub(crate) lists: Vec<u32>,
    /// In major units (NaN: no price).
    pub(crate) price: Vec<f64>,
    pub(crate) in_stock: Vec<bool>,
    pub(crate) hidden: Vec<bool>,
    /// Unix milliseconds (`i64::MIN`: unknown).
    pub(crate) created_ms: Vec<i64>,
    pub(crate) attributes: HashMap<String, AttrColumn>,
    /// The catalog position of each fact index (`u32::MAX`: not in the catalog).
    pub(crate) catalog_pos: Vec<u32>,
    /// Catalog items the model does not know: id → fact index.
    pub(crate) extra: HashMap<String, u32>,
    /// Their ids, in fact-index order from the first extra index.
    pub(crate) extra_ids: Vec<String>,
}

impl Facts {
    /// The facts of `catalog`, indexed by `model_index` (a model item's index) for the items
    /// it knows (`n_model` of them), the others appended.
    pub(crate) fn new(
        catalog: &[Item],
        n_model: usize,
        model_index: impl Fn(&str) -> Option<u32>,
    ) -> Self {
        let mut f = Facts::default();
        let n_extra = catalog
            .iter()
            .filter(|i| model_index(i.id.as_str()).is_none())
            .count();
        let n = n_model + n_extra;
        f.category = vec![NO_SYMBOL; n];
        f.genres = vec![(0, 0); n];
        f.price = vec![f64::NAN; n];
        f.in_stock = vec![true; n];
        f.hidden = vec![false; n];
        f.created_ms = vec![i64::MIN; n];
        f.catalog_pos = vec![u32::MAX; n];
        let mut raw_attrs: Vec<(u32, &serde_json::Map<String, serde_json::Value>)> = Vec::new();
        for (pos, item) in catalog.iter().enumerate() {
            let at = match model_index(item.id.as_str()) {
                Some(i) => i,
                None => {
                    let i = (n_model + f.extra_ids.len()) as u32;
                    f.extra.insert(item.id.as_str().to_owned(), i);
                    f.extra_ids.push(item.id.as_str().to_owned());
                    i
                }
            };
            let a = at as usize;
            f.category[a] = f.intern(&item.category);
            let start = f.lists.len() as u32;
            for g in &item.genres {
                let s = f.intern(g);
                f.lists.push(s);
            }
            f.genres[a] = (start, f.lists.len() as u32 - start);
            f.price[a] = item.price.map_or(f64::NAN, |p| {
                p.minor as f64 / p.currency.minor_per_major() as f64
            });
            f.in_stock[a] = item.in_stock;
            f.hidden[a] = item.hidden;
            f.created_ms[a] = item.created_at.timestamp_millis();
            f.catalog_pos[a] = pos as u32;
            if let Some(map) = item.attributes.as_object().filter(|m| !m.is_empty()) {
                raw_attrs.push((at, map));
            }
        }
        for (at, map) in raw_attrs {
            for (key, value) in map {
                let v = f.attr_value(value);
                let column = f
                    .attributes
                    .entry(key.clone())
                    .or_insert_with(|| AttrColumn {
                        ty: Err(String::new()),
                        values: vec![Attr::Missing; n],
                    });
                let ty = match v {
                    Attr::Missing => continue,
                    Attr::Num(_) => Type::Num,
                    Attr::Sym(_) => Type::Str,
                    Attr::Bool(_) => Type::Bool,
                    Attr::List(..) => Type::List,
                };
                column.ty = match &column.ty {
                    Err(e) if e.is_empty() => Ok(ty),
                    Ok(t) if *t == ty => Ok(ty),
                    Ok(t) => Err(format!(
                        "its values are of mixed types in the catalog ({} and {})",
                        t.name(),
                        ty.name()
                    )),
                    Err(e) => Err(e.clone()),
                };
                column.values[at as usize] = v;
            }
        }
        f
    }

    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&sym) = self.symbols.get(s) {
            return sym;
        }
        let sym = self.names.len() as u32;
        self.symbols.insert(s.to_owned(), sym);
        self.names.push(s.to_owned());
        sym
    }

    fn attr_value(&mut self, v: &serde_json::Value) -> Attr {
        use serde_json::Value as J;
        match v {
            J::Number(n) => n.as_f64().map_or(Attr::Missing, Attr::Num),
            J::String(s) => Attr::Sym(self.intern(s)),
            J::Bool(b) => Attr::Bool(*b),
            J::Array(list) if list.iter().all(J::is_string) => {
                let start = self.lists.len() as u32;
                for s in list.iter().filter_map(J::as_str) {
                    let sym = self.intern(s);
                    self.lists.push(sym);
                }
                Attr::List(start, self.lists.len() as u32 - start)
            }
            _ => Attr::Missing,
        }
    }

    /// The symbol of `s`, or [`NO_SYMBOL`] when no catalog string is `s`.
    pub(crate) fn symbol(&self, s: &str) -> u32 {
        self.symbols.get(s).copied().unwrap_or(NO_SYMBOL)
    }

    pub(crate) fn name(&self, sym: u32) -> &str {
        self.names.get(sym as usize).map_or("", String::as_str)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.category.len()
    }

    /// The type of `attributes.<key>`, or why it has none.
    pub(crate) fn attribute_type(&self, key: &str) -> Result<Type, String> {
        match self.attributes.get(key) {
            None => Err(format!(
                "no catalog item has the attribute {key:?}, so its type is unknown"
            )),
            Some(c) => c.ty.clone(),
        }
    }
}
