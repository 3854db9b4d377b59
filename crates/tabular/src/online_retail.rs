//! UCI Online Retail (Chen 2015): invoice lines of a UK online shop, as Parquet or CSV with the
//! columns `InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice, CustomerID,
//! Country`.
//!
//! How the source maps onto the domain:
//! - every invoice becomes one order (id = InvoiceNo, time = its earliest line, GBP prices);
//!   invoices starting with `C` are cancellations (status `cancelled`); other invoices are
//!   `paid`;
//! - quantities are stored positive: a negative quantity outside a `C` invoice is a stock
//!   write-off, stored as a `cancelled` order so that it counts against the item; a negative
//!   unit price (the two "Adjust bad debt" lines) is stored as a `refunded` order of the
//!   absolute amount;
//! - lines without a CustomerID stay as anonymous orders, kept for item statistics;
//! - every StockCode becomes an item: title = its most frequent description, price = its most
//!   recent positive unit price, category = a product type read from the description (its last
//!   meaningful word, e.g. "HOLDER", "BAG"); non-product codes (postage, fees, manual
//!   adjustments, discounts, samples, gift vouchers) are `hidden` with category `service` so
//!   they are never recommended;
//! - customers become users (country of their first invoice, created at their first invoice,
//!   no marketing consent: the source records none).

use crate::{Bundle, Error, Location, Result};
use marquee_datasets::text::{csv_reader, parse_timestamp, required_column};
use marquee_domain::{
    Currency, Item, ItemId, Money, Order, OrderId, OrderLine, OrderStatus, Timestamp, User, UserId,
};
use polars::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// One invoice line as the source has it.
#[derive(Debug, Clone)]
struct Line {
    invoice: String,
    stock_code: String,
    description: Option<String>,
    quantity: i64,
    date: Timestamp,
    unit_price: f64,
    customer: Option<String>,
    country: Option<String>,
    location: Location,
}

const SERVICE_CODES: [&str; 11] = [
    "POST",
    "DOT",
    "M",
    "C2",
    "D",
    "B",
    "S",
    "CRUK",
    "AMAZONFEE",
    "BANK CHARGES",
    "PADS",
];

/// Reads the data set from `.parquet` or `.csv`.
pub fn read(path: &Path) -> Result<Bundle> {
    let lines = match marquee_datasets::text::extension(path).as_str() {
        "parquet" => read_parquet(path)?,
        "csv" => read_csv(path)?,
        other => {
            return Err(Error::unsupported(
                path,
                format!("expected a .parquet or .csv file, not .{other}"),
            ));
        }
    };
    build(path, &lines)
}

fn is_service(code: &str) -> bool {
    let upper = code.to_ascii_uppercase();
    SERVICE_CODES.contains(&upper.as_str()) || upper.starts_with("GIFT_")
}

fn clean(text: Option<&str>) -> Option<String> {
    text.map(str::trim)
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("nan"))
        .map(str::to_owned)
}

/// CustomerID is a float in the Parquet file (`17850.0`); ids are written without the `.0`.
fn customer_id(value: f64) -> Option<String> {
    (value.is_finite() && value.fract() == 0.0 && value >= 0.0).then(|| format!("{}", value as i64))
}

fn read_parquet(path: &Path) -> Result<Vec<Line>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let df = ParquetReader::new(file)
        .finish()
        .map_err(|e| crate::polars_error(path, &e))?;
    let col = |name: &str| {
        df.column(name)
            .map_err(|_| Error::malformed(path, Location::File, name, "column is missing"))
    };
    let typed = |name: &str, dtype: &DataType| -> Result<Column> {
        col(name)?.cast(dtype).map_err(|e| {
            Error::malformed(
                path,
                Location::File,
                name,
                format!("cannot be read as {dtype}: {e}"),
            )
        })
    };
    let invoice = typed("InvoiceNo", &DataType::String)?;
    let stock = typed("StockCode", &DataType::String)?;
    let description = typed("Description", &DataType::String)?;
    let quantity = typed("Quantity", &DataType::Int64)?;
    let price = typed("UnitPrice", &DataType::Float64)?;
    let country = typed("Country", &DataType::String)?;
    let customer_col = col("CustomerID")?;
    let customers: Vec<Option<String>> =
        if customer_col.dtype().is_float() || customer_col.dtype().is_integer() {
            typed("CustomerID", &DataType::Float64)?
                .f64()
                .map_err(|e| crate::polars_error(path, &e))?
                .iter()
                .map(|v| v.and_then(customer_id))
                .collect()
        } else {
            typed("CustomerID", &DataType::String)?
                .str()
                .map_err(|e| crate::polars_error(path, &e))?
                .iter()
                .map(|v| clean(v).map(|s| s.trim_end_matches(".0").to_owned()))
                .collect()
        };
    let date_col = col("InvoiceDate")?;
    let dates: Vec<Option<Timestamp>> = match date_col.dtype() {
        DataType::Datetime(unit, _) => {
            let unit = *unit;
            date_col
                .datetime()
                .map_err(|e| crate::polars_error(path, &e))?
                .physical()
                .iter()
                .map(|v| {
                    v.and_then(|v| match unit {
                        TimeUnit::Nanoseconds => Some(chrono::DateTime::from_timestamp_nanos(v)),
                        TimeUnit::Microseconds => chrono::DateTime::from_timestamp_micros(v),
                        TimeUnit::Milliseconds => chrono::DateTime::from_timestamp_millis(v),
                    })
                })
                .collect()
        }
        _ => typed("InvoiceDate", &DataType::String)?
            .str()
            .map_err(|e| crate::polars_error(path, &e))?
            .iter()
            .map(|v| v.and_then(parse_timestamp))
            .collect(),
    };
    let invoice = invoice.str().map_err(|e| crate::polars_error(path, &e))?;
    let stock = stock.str().map_err(|e| crate::polars_error(path, &e))?;
    let description = description
        .str()
        .map_err(|e| crate::polars_error(path, &e))?;
    let quantity = quantity.i64().map_err(|e| crate::polars_error(path, &e))?;
    let price = price.f64().map_err(|e| crate::polars_error(path, &e))?;
    let country = country.str().map_err(|e| crate::polars_error(path, &e))?;
    let mut lines = Vec::with_capacity(df.height());
    for (row, ((((((inv, code), desc), qty), unit), cty), (cust, date))) in invoice
        .iter()
        .zip(stock.iter())
        .zip(description.iter())
        .zip(quantity.iter())
        .zip(price.iter())
        .zip(country.iter())
        .zip(customers.into_iter().zip(dates))
        .enumerate()
    {
        let at = Location::Row(row as u64);
        let missing =
            |field: &str| Error::malformed(path, at, field, "value is missing or unreadable");
        lines.push(Line {
            invoice: clean(inv).ok_or_else(|| missing("InvoiceNo"))?,
            stock_code: clean(code).ok_or_else(|| missing("StockCode"))?,
            description: clean(desc),
            quantity: qty.ok_or_else(|| missing("Quantity"))?,
            date: date.ok_or_else(|| missing("InvoiceDate"))?,
            unit_price: unit.ok_or_else(|| missing("UnitPrice"))?,
            customer: cust,
            country: clean(cty),
            location: at,
        });
    }
    Ok(lines)
}

fn read_csv(path: &Path) -> Result<Vec<Line>> {
    let mut reader = csv_reader(path, b',')?;
    let headers = reader.headers().map_err(|e| Error::csv(path, &e))?.clone();
    let c = |name: &str| required_column(path, &headers, &[name]);
    let (inv, code, desc, qty, date, price, cust, cty) = (
        c("InvoiceNo")?,
        c("StockCode")?,
        c("Description")?,
        c("Quantity")?,
        c("InvoiceDate")?,
        c("UnitPrice")?,
        c("CustomerID")?,
        c("Country")?,
    );
    let mut lines = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| Error::csv(path, &e))?;
        let at = marquee_datasets::text::line_of(&record);
        let bad = |field: &str, message: String| Error::malformed(path, at, field, message);
        let quantity = record[qty].trim().parse::<i64>().map_err(|_| {
            bad(
                "Quantity",
                format!("{:?} is not a whole number", &record[qty]),
            )
        })?;
        let unit_price = record[price]
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|p| p.is_finite())
            .ok_or_else(|| bad("UnitPrice", format!("{:?} is not a number", &record[price])))?;
        let date_text = &record[date];
        let when = parse_timestamp(date_text).ok_or_else(|| {
            bad(
                "InvoiceDate",
                format!("{date_text:?} is not a date and time"),
            )
        })?;
        let customer =
            match clean(Some(&record[cust])) {
                None => None,
                Some(text) => Some(text.parse::<f64>().ok().and_then(customer_id).ok_or_else(
                    || bad("CustomerID", format!("{text:?} is not a customer number")),
                )?),
            };
        lines.push(Line {
            invoice: clean(Some(&record[inv]))
                .ok_or_else(|| bad("InvoiceNo", "is empty".into()))?,
            stock_code: clean(Some(&record[code]))
                .ok_or_else(|| bad("StockCode", "is empty".into()))?,
            description: clean(Some(&record[desc])),
            quantity,
            date: when,
            unit_price,
            customer,
            country: clean(Some(&record[cty])),
            location: at,
        });
    }
    Ok(lines)
}

/// Words that name a product type, to find the category in a description.
const PRODUCT_TYPES: [&str; 72] = [
    "bag",
    "mug",
    "cup",
    "card",
    "candle",
    "holder",
    "lantern",
    "sign",
    "box",
    "tin",
    "cakestand",
    "bottle",
    "cushion",
    "clock",
    "frame",
    "light",
    "necklace",
    "earrings",
    "bracelet",
    "ring",
    "umbrella",
    "apron",
    "towel",
    "plate",
    "bowl",
    "jar",
    "doormat",
    "purse",
    "notebook",
    "wrap",
    "sticker",
    "decoration",
    "ornament",
    "garland",
    "bunting",
    "case",
    "tray",
    "teapot",
    "spoon",
    "cutlery",
    "napkin",
    "doorstop",
    "hook",
    "hanger",
    "mirror",
    "vase",
    "pot",
    "planter",
    "kit",
    "toy",
    "game",
    "cloth",
    "basket",
    "block",
    "pen",
    "pencil",
    "calendar",
    "chalkboard",
    "wallet",
    "pouch",
    "lamp",
    "heart",
    "egg",
    "tape",
    "magnet",
    "coaster",
    "glass",
    "dish",
    "ribbon",
    "paper",
    "set",
    "tissues",
];

/// A product type from a description: the right-most word that names a product type (plural
/// or not), else the last word that is not a number, colour or filler, else `other`.
pub fn category_of(description: &str) -> String {
    const SKIP: [&str; 22] = [
        "of", "the", "and", "in", "with", "design", "assorted", "pack", "tier", "red", "pink",
        "blue", "white", "black", "green", "ivory", "large", "small", "mini", "jumbo", "vintage",
        "colour",
    ];
    let words: Vec<String> = description
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| w.len() >= 3)
        .map(str::to_ascii_lowercase)
        .collect();
    let singular = |w: &str| -> String {
        if PRODUCT_TYPES.contains(&w) {
            return w.to_owned();
        }
        for cut in ["es", "s"] {
            if let Some(stem) = w.strip_suffix(cut)
                && PRODUCT_TYPES.contains(&stem)
            {
                return stem.to_owned();
            }
        }
        String::new()
    };
    if let Some(kind) = words
        .iter()
        .rev()
        .map(|w| singular(w))
        .find(|k| !k.is_empty() && k != "set")
    {
        return kind;
    }
    words
        .iter()
        .rev()
        .find(|w| !SKIP.contains(&w.as_str()))
        .cloned()
        .unwrap_or_else(|| "other".to_owned())
}

fn build(path: &Path, lines: &[Line]) -> Result<Bundle> {
    let gbp = Currency::new("GBP").unwrap_or_else(|_| unreachable!("GBP is a valid code"));
    let mut notes = Vec::new();

    // Items: most frequent description, latest positive price, first appearance.
    struct ItemAcc<'a> {
        descriptions: HashMap<&'a str, usize>,
        price: Option<(Timestamp, f64)>,
        first: Timestamp,
    }
    let mut items: BTreeMap<&str, ItemAcc<'_>> = BTreeMap::new();
    for l in lines {
        let acc = items.entry(l.stock_code.as_str()).or_insert(ItemAcc {
            descriptions: HashMap::new(),
            price: None,
            first: l.date,
        });
        if let Some(d) = &l.description {
            *acc.descriptions.entry(d.as_str()).or_default() += 1;
        }
        if l.unit_price > 0.0 && acc.price.is_none_or(|(t, _)| l.date >= t) {
            acc.price = Some((l.date, l.unit_price));
        }
        acc.first = acc.first.min(l.date);
    }
    let mut catalog = Vec::with_capacity(items.len());
    for (code, acc) in &items {
        let title = acc
            .descriptions
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map_or_else(|| (*code).to_owned(), |(d, _)| (*d).to_owned());
        let id = ItemId::new(*code)
            .map_err(|e| Error::malformed(path, Location::File, "StockCode", e.to_string()))?;
        let service = is_service(code);
        let category = if service {
            "service".to_owned()
        } else {
            category_of(&title)
        };
        let mut item = Item::new(id, title, category, acc.first);
        item.hidden = service;
        item.price = acc
            .price
            .map(|(_, p)| Money::from_major(p, gbp))
            .transpose()
            .map_err(|e| Error::malformed(path, Location::File, "UnitPrice", e.to_string()))?;
        catalog.push(item);
    }

    // Orders: group lines by invoice, in file order.
    let mut order_index: HashMap<&str, usize> = HashMap::new();
    let mut orders: Vec<Order> = Vec::new();
    let mut users: BTreeMap<&str, (Timestamp, Option<&str>)> = BTreeMap::new();
    let (mut write_offs, mut bad_debt, mut zero_price) = (0usize, 0usize, 0usize);
    for l in lines {
        let bad = |field: &str, message: String| Error::malformed(path, l.location, field, message);
        let cancelled_invoice = l.invoice.starts_with('C') || l.invoice.starts_with('c');
        let status = if cancelled_invoice {
            OrderStatus::Cancelled
        } else if l.unit_price < 0.0 {
            bad_debt += 1;
            OrderStatus::Refunded
        } else if l.quantity < 0 {
            write_offs += 1;
            OrderStatus::Cancelled
        } else {
            OrderStatus::Paid
        };
        if l.unit_price == 0.0 {
            zero_price += 1;
        }
        if l.quantity == 0 {
            return Err(bad("Quantity", "is zero".into()));
        }
        let price = Money::from_major(l.unit_price.abs(), gbp)
            .map_err(|e| bad("UnitPrice", e.to_string()))?;
        let line = OrderLine::from_signed(
            ItemId::new(l.stock_code.as_str()).map_err(|e| bad("StockCode", e.to_string()))?,
            l.quantity.abs(),
            price,
        )
        .map_err(|e| bad("Quantity", e.to_string()))?;
        let user = match &l.customer {
            Some(c) => Some(UserId::new(c.as_str()).map_err(|e| bad("CustomerID", e.to_string()))?),
            None => None,
        };
        if let Some(c) = &l.customer {
            let entry = users
                .entry(c.as_str())
                .or_insert((l.date, l.country.as_deref()));
            if l.date < entry.0 {
                *entry = (l.date, l.country.as_deref());
            }
        }
        match order_index.get(l.invoice.as_str()) {
            Some(&i) => {
                let order = &mut orders[i];
                if order.user != user {
                    return Err(bad(
                        "CustomerID",
                        format!("invoice {} has lines of different customers", l.invoice),
                    ));
                }
                order.created_at = order.created_at.min(l.date);
                if status == OrderStatus::Refunded {
                    order.status = status;
                }
                order.lines.push(line);
            }
            None => {
                order_index.insert(l.invoice.as_str(), orders.len());
                orders.push(Order {
                    id: OrderId::new(l.invoice.as_str())
                        .map_err(|e| bad("InvoiceNo", e.to_string()))?,
                    user,
                    created_at: l.date,
                    status,
                    lines: vec![line],
                });
            }
        }
    }
    let users = users
        .into_iter()
        .map(|(id, (first, country))| {
            let mut u = User::new(
                UserId::new(id).map_err(|e| {
                    Error::malformed(path, Location::File, "CustomerID", e.to_string())
                })?,
                first,
            );
            u.country = country.map(str::to_owned);
            Ok(u)
        })
        .collect::<Result<Vec<_>>>()?;
    let anonymous = orders.iter().filter(|o| o.user.is_none()).count();
    let cancelled = orders
        .iter()
        .filter(|o| o.id.as_str().starts_with('C'))
        .count();
    notes.push(format!(
        "{} invoices: {cancelled} cancellations (C), {anonymous} without a customer (kept as anonymous orders)",
        orders.len()
    ));
    if write_offs > 0 {
        notes.push(format!(
            "{write_offs} lines with a negative quantity outside a C invoice stored as cancelled orders (stock write-offs)"
        ));
    }
    if bad_debt > 0 {
        notes.push(format!(
            "{bad_debt} lines with a negative unit price stored as refunded orders"
        ));
    }
    if zero_price > 0 {
        notes.push(format!(
            "{zero_price} lines with a unit price of 0 kept as they are"
        ));
    }
    let hidden = catalog.iter().filter(|i| i.hidden).count();
    notes.push(format!(
        "{hidden} non-product stock codes (postage, fees, vouchers) stored as hidden items"
    ));
    Ok(Bundle {
        items: catalog,
        items_are_placeholders: false,
        users,
        users_are_placeholders: false,
        orders,
        events: Vec::new(),
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_types_come_from_descriptions() {
        assert_eq!(category_of("WHITE HANGING HEART T-LIGHT HOLDER"), "holder");
        assert_eq!(category_of("REGENCY CAKESTAND 3 TIER"), "cakestand");
        assert_eq!(category_of("JUMBO BAG RED RETROSPOT"), "bag");
        assert_eq!(category_of("SET OF 3 CAKE TINS PANTRY DESIGN "), "tin");
        assert_eq!(category_of("PARTY BUNTING"), "bunting");
        assert_eq!(category_of("ASSORTED COLOUR BIRD ORNAMENT"), "ornament");
        assert_eq!(category_of("POPPY'S PLAYHOUSE KITCHEN"), "kitchen");
        assert_eq!(category_of("12"), "other");
    }

    #[test]
    fn service_codes_are_recognised() {
        assert!(is_service("POST") && is_service("gift_0001_20") && is_service("m"));
        assert!(!is_service("85123A") && !is_service("DCGS0076"));
    }

    #[test]
    fn customer_ids_drop_the_float_suffix() {
        assert_eq!(customer_id(17850.0).as_deref(), Some("17850"));
        assert_eq!(customer_id(1.5), None);
    }
}
