//! The noise of aggregate releases: the two-sided geometric mechanism
//! (Ghosh, Roughgarden and Sundararajan, "Universally utility-maximizing
//! privacy mechanisms", 2009), the discrete form of the Laplace mechanism.
//! A count `n` is released as `n + X` where `P(X = k) ∝ α^|k|` and
//! `α = exp(-ε / Δ)`, `Δ` being the most one engineer can change `n`; then
//! for any output, the odds that the engineer is counted change by at most
//! `e^ε`. `X` is drawn as the difference of two geometric variables.
//!
//! The draw is deterministic: its uniform variates come from
//! HMAC-SHA256 under the org's noise key (derived from the master key)
//! over the figure's name (scope, period, concept, figure), so the same
//! question always has the same noise (and the release is also kept, see
//! `release`), and nobody without the master key can predict or remove it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The name of one released figure: what its noise is drawn for.
#[derive(Debug, Clone, Copy)]
pub struct Draw<'a> {
    /// `org`, `team:<group id>`.
    pub scope: &'a str,
    /// The period (or, for a trend cell, the week) as days since 1970-01-01.
    pub period: i64,
    pub concept: &'a str,
    /// `n_seen`, `n_demonstrated`, `recall_sum`, ...
    pub figure: &'a str,
}

/// The org's noise key, with HMAC's key schedule done once: a release
/// draws thousands of figures (every concept, every figure, every week of
/// the trend), and each draw then starts from a copy of this state.
#[derive(Clone)]
pub struct NoiseKey(Hmac<Sha256>);

impl NoiseKey {
    #[must_use]
    pub fn new(key: &[u8; 32]) -> Self {
        Self(
            <Hmac<Sha256> as Mac>::new_from_slice(key)
                .expect("HMAC-SHA256 takes a key of any length"),
        )
    }
}

/// Two uniform variates in (0, 1] for `draw`.
fn uniforms(key: &NoiseKey, draw: &Draw<'_>) -> (f64, f64) {
    let mut mac = key.0.clone();
    // Length-prefixed fields, so that no two names run into each other.
    for part in [
        draw.scope.as_bytes(),
        draw.concept.as_bytes(),
        draw.figure.as_bytes(),
    ] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac.update(&draw.period.to_be_bytes());
    let out = mac.finalize().into_bytes();
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&out[i * 8..i * 8 + 8]);
        u64::from_be_bytes(b)
    };
    // 53 random bits, shifted into (0, 1]: never 0, so ln is finite.
    let unit = |w: u64| ((w >> 11) + 1) as f64 / (1u64 << 53) as f64;
    (unit(word(0)), unit(word(1)))
}

/// A geometric variate on {0, 1, 2, ...} with `P(G >= k) = α^k`, from `u`
/// in (0, 1] by inversion: `floor(ln u / ln α)`.
fn geometric(u: f64, ln_alpha: f64) -> i64 {
    let g = (u.ln() / ln_alpha).floor();
    // ln u >= -36.8 for 53-bit u, so g is far inside i64 for any α we use.
    g as i64
}

/// Two-sided geometric noise for a figure one engineer changes by at most
/// `sensitivity`, at privacy `epsilon`.
pub fn two_sided(key: &NoiseKey, draw: &Draw<'_>, epsilon: f64, sensitivity: f64) -> i64 {
    let ln_alpha = -epsilon / sensitivity;
    let (u1, u2) = uniforms(key, draw);
    geometric(u1, ln_alpha) - geometric(u2, ln_alpha)
}

/// The `q` quantile of `|X|` for the noise of a count (sensitivity 1): the
/// smallest `k` with `P(|X| > k) <= 1 - q`, using
/// `P(|X| > k) = 2 α^(k+1) / (1 + α)`.
pub fn bound(epsilon: f64, q: f64) -> i64 {
    let alpha = (-epsilon).exp();
    let mut k = 0i64;
    while 2.0 * alpha.powi(i32::try_from(k + 1).unwrap_or(i32::MAX)) / (1.0 + alpha) > 1.0 - q {
        k += 1;
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> NoiseKey {
        NoiseKey::new(&[7; 32])
    }

    fn draw<'a>(scope: &'a str, concept: &'a str) -> Draw<'a> {
        Draw {
            scope,
            period: 20_468,
            concept,
            figure: "n_seen",
        }
    }

    #[test]
    fn noise_is_deterministic_per_scope_concept_period_and_figure() {
        let a = two_sided(&key(), &draw("org", "rust-lifetimes"), 0.5, 1.0);
        for _ in 0..10 {
            assert_eq!(
                two_sided(&key(), &draw("org", "rust-lifetimes"), 0.5, 1.0),
                a
            );
        }
        // Any part of the name, or the key, gives another draw: over many
        // names, the draws are not all the same.
        let others: Vec<i64> = (0..50)
            .map(|i| {
                two_sided(
                    &key(),
                    &draw(&format!("team:{i}"), "rust-lifetimes"),
                    0.5,
                    1.0,
                )
            })
            .collect();
        assert!(others.iter().any(|&x| x != a));
        let periods: Vec<i64> = (0..50)
            .map(|p| {
                let mut d = draw("org", "rust-lifetimes");
                d.period += 7 * p;
                two_sided(&key(), &d, 0.5, 1.0)
            })
            .collect();
        assert!(periods.iter().any(|&x| x != a));
        let keys: Vec<i64> = (0..50u8)
            .map(|k| {
                two_sided(
                    &NoiseKey::new(&[k; 32]),
                    &draw("org", "rust-lifetimes"),
                    0.5,
                    1.0,
                )
            })
            .collect();
        assert!(keys.iter().any(|&x| x != a));
        // Fields are length-prefixed: moving a byte between them changes the draw.
        let a1 = Draw {
            scope: "ab",
            period: 1,
            concept: "c",
            figure: "f",
        };
        let a2 = Draw {
            scope: "a",
            period: 1,
            concept: "bc",
            figure: "f",
        };
        assert_ne!(uniforms(&key(), &a1), uniforms(&key(), &a2));
    }

    /// Over 40,000 scopes (a fixed key, so the test is reproducible), the
    /// noise has mean 0 and the variance `2α/(1-α)^2` of the two-sided
    /// geometric distribution, and its 95 % bound holds for 95 % of draws.
    #[test]
    fn noise_is_unbiased_over_scopes_with_the_promised_spread() {
        let n = 40_000;
        for epsilon in [0.25, 0.5, 1.0] {
            let xs: Vec<f64> = (0..n)
                .map(|i| {
                    two_sided(
                        &key(),
                        &draw(&format!("team:{i}"), "sql-joins"),
                        epsilon,
                        1.0,
                    ) as f64
                })
                .collect();
            let mean = xs.iter().sum::<f64>() / n as f64;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            let alpha = (-epsilon).exp();
            let want = 2.0 * alpha / (1.0 - alpha).powi(2);
            // The standard error of the mean is sqrt(var / n); allow 4 of them.
            let se = (want / n as f64).sqrt();
            assert!(mean.abs() < 4.0 * se, "ε {epsilon}: mean {mean}, se {se}");
            assert!(
                (var / want - 1.0).abs() < 0.06,
                "ε {epsilon}: variance {var}, want {want}"
            );
            let k = bound(epsilon, 0.95) as f64;
            let inside = xs.iter().filter(|x| x.abs() <= k).count() as f64 / n as f64;
            assert!(inside >= 0.94, "ε {epsilon}: {inside} within ±{k}");
            // And the bound is the smallest such: one less covers too few.
            let tighter = xs.iter().filter(|x| x.abs() <= k - 1.0).count() as f64 / n as f64;
            assert!(
                tighter < 0.96,
                "ε {epsilon}: bound {k} is not tight ({tighter})"
            );
        }
    }

    #[test]
    fn the_bound_of_the_default_epsilon() {
        // ε = 0.5: P(|X| > 5) = 2·e^-3/(1+e^-0.5) ≈ 0.062, P(|X| > 6) ≈ 0.038.
        assert_eq!(bound(0.5, 0.95), 6);
        assert_eq!(bound(1.0, 0.95), 3);
    }

    #[test]
    fn sensitivity_scales_the_noise() {
        let xs: Vec<i64> = (0..2_000)
            .map(|i| two_sided(&key(), &draw(&format!("s{i}"), "c"), 0.5, 1_000.0))
            .collect();
        let mean_abs = xs.iter().map(|x| x.abs() as f64).sum::<f64>() / xs.len() as f64;
        // Laplace-like with scale Δ/ε = 2,000: mean |X| ≈ 2,000.
        assert!((1_600.0..2_400.0).contains(&mean_abs), "{mean_abs}");
    }
}
