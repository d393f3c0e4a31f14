//! BBA (Huang et al., SIGCOMM 2014), as in Pensieve's baseline: below the reservoir the lowest
//! rung, above reservoir + cushion the highest, linear in between.

use super::{Abr, AbrContext, Decision};

#[derive(Debug, Clone)]
pub struct Bba {
    pub reservoir_s: f64,
    pub cushion_s: f64,
}

impl Default for Bba {
    /// Pensieve's values: reservoir 5 s, cushion 10 s.
    fn default() -> Self {
        Bba {
            reservoir_s: 5.0,
            cushion_s: 10.0,
        }
    }
}

impl Bba {
    /// The reservoir/cushion map from buffer level to rung.
    pub fn map(&self, buffer_s: f64, rungs: usize) -> usize {
        let top = rungs.saturating_sub(1);
        if buffer_s < self.reservoir_s {
            0
        } else if buffer_s >= self.reservoir_s + self.cushion_s {
            top
        } else {
            let x = top as f64 * (buffer_s - self.reservoir_s) / self.cushion_s;
            (x.floor() as usize).min(top)
        }
    }
}

impl Abr for Bba {
    fn name(&self) -> &'static str {
        "bba"
    }

    fn choose(&mut self, ctx: &AbrContext) -> Decision {
        Decision::now(self.map(ctx.buffer_s, ctx.video.rungs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_reservoir_cushion_map() {
        let b = Bba::default();
        assert_eq!(b.map(0.0, 6), 0);
        assert_eq!(b.map(4.99, 6), 0);
        assert_eq!(b.map(5.0, 6), 0);
        assert_eq!(b.map(6.99, 6), 0);
        assert_eq!(b.map(7.0, 6), 1); // 5 x 2/10 = 1
        assert_eq!(b.map(9.0, 6), 2);
        assert_eq!(b.map(11.0, 6), 3);
        assert_eq!(b.map(13.0, 6), 4);
        assert_eq!(b.map(14.99, 6), 4);
        assert_eq!(b.map(15.0, 6), 5);
        assert_eq!(b.map(60.0, 6), 5);
        // Monotone in the buffer.
        let mut last = 0;
        for i in 0..600 {
            let r = b.map(i as f64 * 0.1, 10);
            assert!(r >= last);
            last = r;
        }
    }
}
