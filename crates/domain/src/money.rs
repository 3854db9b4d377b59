//! Money in minor units (cents, pence) with an ISO 4217 currency code. Amounts are integers so
//! that sums are exact to the cent.

use crate::{Result, ValidationError};
use std::fmt;

/// An ISO 4217 currency code: three ASCII upper-case letters.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    /// Validates a currency code such as `EUR`, `GBP`, `KRW`.
    pub fn new(code: &str) -> Result<Self> {
        let bytes = code.as_bytes();
        if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_uppercase) {
            return Err(ValidationError::Invalid {
                field: "currency",
                message: format!("{code:?} is not a three-letter upper-case ISO 4217 code"),
            });
        }
        Ok(Self([bytes[0], bytes[1], bytes[2]]))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// Minor units per major unit (100 for most currencies, 1 for KRW and JPY).
    pub fn minor_per_major(&self) -> i64 {
        match self.as_str() {
            "KRW" | "JPY" | "ISK" | "CLP" | "VND" => 1,
            "BHD" | "KWD" | "OMR" | "JOD" | "TND" => 1000,
            _ => 100,
        }
    }
}

impl TryFrom<String> for Currency {
    type Error = ValidationError;
    fn try_from(value: String) -> Result<Self> {
        Self::new(&value)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount of money in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Money {
    /// Amount in minor units (pence for GBP, cents for EUR, won for KRW).
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    /// Converts a decimal amount in major units (as data sets write prices) to minor units,
    /// rounding half away from zero. Refuses amounts that are not finite or do not fit.
    pub fn from_major(amount: f64, currency: Currency) -> Result<Self> {
        let minor = amount * currency.minor_per_major() as f64;
        if !minor.is_finite() || minor.abs() > 9.0e15 {
            return Err(ValidationError::OutOfRange {
                field: "price",
                message: format!("{amount} is not a representable amount"),
            });
        }
        Ok(Self::new(minor.round() as i64, currency))
    }

    /// Fails unless the amount is zero or positive: prices are never negative.
    pub fn non_negative(self, field: &'static str) -> Result<Self> {
        if self.minor < 0 {
            return Err(ValidationError::OutOfRange {
                field,
                message: format!("{self} is negative"),
            });
        }
        Ok(self)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per = self.currency.minor_per_major();
        if per == 1 {
            return write!(f, "{} {}", self.minor, self.currency);
        }
        let digits = per.ilog10() as usize;
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        let per = per.unsigned_abs();
        write!(
            f,
            "{sign}{}.{:0digits$} {}",
            abs / per,
            abs % per,
            self.currency
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_codes_are_validated() {
        assert!(Currency::new("GBP").is_ok());
        assert!(Currency::new("gbp").is_err());
        assert!(Currency::new("POUND").is_err());
    }

    #[test]
    fn major_amounts_round_to_minor_units() {
        let gbp = Currency::new("GBP").unwrap();
        assert_eq!(Money::from_major(2.55, gbp).unwrap().minor, 255);
        assert_eq!(Money::from_major(0.29, gbp).unwrap().minor, 29);
        assert_eq!(Money::from_major(-11062.06, gbp).unwrap().minor, -1_106_206);
        let krw = Currency::new("KRW").unwrap();
        assert_eq!(Money::from_major(9900.0, krw).unwrap().minor, 9900);
        assert!(Money::from_major(f64::NAN, gbp).is_err());
    }

    #[test]
    fn money_displays_in_major_units() {
        let gbp = Currency::new("GBP").unwrap();
        assert_eq!(Money::new(255, gbp).to_string(), "2.55 GBP");
        assert_eq!(Money::new(-5, gbp).to_string(), "-0.05 GBP");
        assert!(Money::new(-5, gbp).non_negative("unit_price").is_err());
    }
}
