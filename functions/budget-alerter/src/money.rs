//! Amounts of money (and of usage) as decimals, never binary floating point, with their unit
//! printed the way AWS reported it: `$36.69` from a Budgets message, `25.00 USD` from the API,
//! `4.37 GB` for a usage budget.

use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};

/// Where the unit goes when the amount is printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit {
    /// Before the number, as in AWS's messages: `$`.
    Prefix(String),
    /// After it, as the API reports it: `USD`, `GB`, `Hrs`.
    Suffix(String),
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount {
    pub value: Decimal,
    pub unit: Unit,
}

impl Amount {
    /// An amount as the AWS APIs report it: a decimal string and a unit code.
    pub fn from_api(amount: &str, unit: &str) -> Option<Self> {
        let value = Decimal::from_str(amount.trim()).ok()?;
        let unit = match unit.trim() {
            "" => Unit::None,
            u => Unit::Suffix(u.to_string()),
        };
        Some(Self { value, unit })
    }

    /// An amount as AWS writes it in text: `$1,234.56`, `$0.5`, `> $24.00`, `$30`, `4.37 GB`,
    /// `1,000 Hrs`, `-$3.10`. Thousands separators are dropped; anything without a number is
    /// `None`.
    pub fn parse_text(text: &str) -> Option<Self> {
        let text = text
            .trim()
            .trim_start_matches(['>', '<', '=', '≥', '≤'])
            .trim();
        let start = text.find(|c: char| c.is_ascii_digit())?;
        let rest = text.get(start..)?;
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == ',' || c == '.'))
            .unwrap_or(rest.len());
        let number = rest.get(..end)?.trim_end_matches(['.', ',']);
        let prefix = text.get(..start)?.trim();
        let suffix = rest.get(number.len()..)?.trim();
        let negative = prefix.contains('-');
        let prefix = prefix.trim_matches(|c: char| c == '-' || c.is_whitespace());
        let digits: String = number.chars().filter(|c| *c != ',').collect();
        let mut value = Decimal::from_str(&digits).ok()?;
        if negative {
            value.set_sign_negative(true);
        }
        let unit = match (prefix.is_empty(), suffix.is_empty()) {
            (false, _) => Unit::Prefix(prefix.to_string()),
            (true, false) => Unit::Suffix(suffix.split_whitespace().next()?.to_string()),
            (true, true) => Unit::None,
        };
        Some(Self { value, unit })
    }

    pub fn with_value(&self, value: Decimal) -> Self {
        Self {
            value,
            unit: self.unit.clone(),
        }
    }

    /// This amount as a percentage of `of`, or `None` when `of` is zero.
    pub fn percent_of(&self, of: &Amount) -> Option<Decimal> {
        if of.value.is_zero() {
            return None;
        }
        self.value
            .checked_mul(Decimal::ONE_HUNDRED)?
            .checked_div(of.value)
    }

    /// `percent` % of this amount (a threshold in money), to the cent.
    pub fn share(&self, percent: Decimal) -> Self {
        let value = self
            .value
            .checked_mul(percent)
            .and_then(|v| v.checked_div(Decimal::ONE_HUNDRED))
            .unwrap_or(Decimal::MAX)
            .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
        self.with_value(value)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let number = two_places(self.value);
        match &self.unit {
            Unit::Prefix(p) if self.value.is_sign_negative() => {
                write!(f, "-{p}{}", number.trim_start_matches('-'))
            }
            // A code (`USD`) needs a space; a symbol (`$`) does not.
            Unit::Prefix(p) if p.ends_with(|c: char| c.is_alphabetic()) => {
                write!(f, "{p} {number}")
            }
            Unit::Prefix(p) => write!(f, "{p}{number}"),
            Unit::Suffix(s) => write!(f, "{number} {s}"),
            Unit::None => f.write_str(&number),
        }
    }
}

/// At least two decimal places (money), rounded to two: `0.5` → `0.50`, `0.0101516` → `0.01`.
fn two_places(value: Decimal) -> String {
    let mut rounded = value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(2);
    rounded.to_string()
}

/// A percentage for people: `85`, `85.5`, `33.33` (two places at most, no trailing zeros).
pub fn percent_text(percent: Decimal) -> String {
    percent
        .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
        .normalize()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn text_amounts_with_and_without_decimals_and_separators() {
        let cases = [
            ("$36.69", "36.69", "$36.69"),
            ("> $24.00", "24.00", "$24.00"),
            ("$0.5", "0.5", "$0.50"),
            ("$30", "30", "$30.00"),
            ("$1,234,567.891", "1234567.891", "$1234567.89"),
            ("4.37 GB", "4.37", "4.37 GB"),
            ("1,000 Hrs", "1000", "1000.00 Hrs"),
            ("-$3.10", "-3.10", "-$3.10"),
            ("USD 12.5", "12.5", "USD 12.50"),
        ];
        for (text, value, shown) in cases {
            let amount = Amount::parse_text(text).unwrap();
            assert_eq!(amount.value, d(value), "{text}");
            assert_eq!(amount.to_string(), shown, "{text}");
        }
        assert!(Amount::parse_text("n/a").is_none());
        assert!(Amount::parse_text("$").is_none());
    }

    #[test]
    fn percentages_and_shares_are_exact() {
        let budget = Amount::from_api("25.0", "USD").unwrap();
        assert_eq!(budget.share(d("50")).to_string(), "12.50 USD");
        assert_eq!(budget.share(d("80")).value, d("20"));
        let spent = Amount::from_api("21.25", "USD").unwrap();
        assert_eq!(spent.percent_of(&budget), Some(d("85")));
        assert_eq!(percent_text(d("33.3333")), "33.33");
        assert_eq!(percent_text(d("100.00")), "100");
        assert_eq!(spent.percent_of(&budget.with_value(Decimal::ZERO)), None);
        // 0.1 + 0.2 is 0.3 in money.
        assert_eq!(d("0.1") + d("0.2"), d("0.3"));
    }

    #[test]
    fn extreme_amounts_do_not_panic() {
        for text in [
            "79228162514264337593543950335",
            "-79228162514264337593543950335",
            "0.0000000000000000000000000001",
            "0",
        ] {
            let big = Amount::from_api(text, "USD").unwrap();
            let _ = big.to_string();
            let _ = big.share(d("100000")).to_string();
            let _ = big.percent_of(&big.with_value(d("0.0000000000000000000000000001")));
            let _ = percent_text(big.value);
        }
    }

    proptest! {
        #[test]
        fn any_text_parses_or_not_without_panicking(text in ".{0,80}") {
            if let Some(amount) = Amount::parse_text(&text) {
                let _ = amount.to_string();
                let _ = amount.share(d("80"));
            }
        }
    }
}
