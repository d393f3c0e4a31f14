//! The synthetic source: a moving test pattern rendered straight into YUV 4:2:0 at any size.
//!
//! The scene is defined in resolution-independent terms, so every rendition shows the same picture:
//! a drifting gradient, a scrolling noise texture (camera-pan-like motion that costs bits the way
//! real video does), three moving shapes, a static colour-bar strip, and a burned-in box with the
//! presentation time, the frame number and the rendition label (5x7 bitmap font).
//!
//! For A/V sync measurements, the frame at each whole second carries a large white box (the
//! marker, [`marker_rect`]) and the sound track ([`PatternAudio`]) is a steady low tone with a
//! short 1 kHz beep starting at each whole second.

/// One picture in planar YUV 4:2:0 (I420): the Y plane, then U, then V, each tightly packed.
#[derive(Debug, Clone)]
pub struct Yuv420 {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

impl Yuv420 {
    /// A black picture; `width` and `height` must be even.
    pub fn new(width: usize, height: usize) -> Yuv420 {
        let luma = width * height;
        let mut data = vec![16u8; luma + luma / 2];
        data[luma..].fill(128);
        Yuv420 {
            width,
            height,
            data,
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// All three planes as one buffer (the layout of ffmpeg's `rawvideo` `yuv420p`).
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Mutable access to all three planes, e.g. to read a raw frame into.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// The Y, U and V planes.
    pub fn planes(&self) -> (&[u8], &[u8], &[u8]) {
        let luma = self.width * self.height;
        let chroma = luma / 4;
        let (y, uv) = self.data.split_at(luma);
        let (u, v) = uv.split_at(chroma);
        (y, u, v)
    }

    fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let luma = self.width * self.height;
        let chroma = luma / 4;
        let (y, uv) = self.data.split_at_mut(luma);
        let (u, v) = uv.split_at_mut(chroma);
        (y, u, v)
    }
}

const TILE: usize = 256;
/// Texture cells across the picture width, whatever the resolution.
const TEXELS_ACROSS: usize = 384;

/// A colour in limited-range BT.709 YUV.
#[derive(Debug, Clone, Copy)]
struct Yuv {
    y: u8,
    u: u8,
    v: u8,
}

/// Converts 8-bit RGB to limited-range BT.709 YUV.
fn rgb(r: u8, g: u8, b: u8) -> Yuv {
    let (r, g, b) = (f32::from(r), f32::from(g), f32::from(b));
    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    let u = (b - y) / 1.8556;
    let v = (r - y) / 1.5748;
    Yuv {
        y: (16.0 + y * 219.0 / 255.0).round() as u8,
        u: (128.0 + u * 224.0 / 255.0).round() as u8,
        v: (128.0 + v * 224.0 / 255.0).round() as u8,
    }
}

/// Renders the test pattern for one picture size.
pub struct Pattern {
    width: usize,
    height: usize,
    fps: u32,
    label: String,
    /// The noise tile resampled to this picture size: `period` rows of `period + width`
    /// entries (each row continues with its own start, so any `width` run is contiguous).
    texture: Vec<i8>,
    period: usize,
    bars: Vec<Yuv>,
    text_scale: usize,
    // Per-frame scratch, kept to avoid reallocating.
    grad_x: Vec<i16>,
    chroma_u_x: Vec<i16>,
    chroma_v_x: Vec<i16>,
}

impl Pattern {
    /// A renderer for `width`x`height` (both even) at `fps` frames per second; `label` is burned
    /// in under the clock (for example the rendition's size and bitrate).
    pub fn new(width: usize, height: usize, fps: u32, label: &str) -> Pattern {
        let bars = [
            (191, 191, 191),
            (191, 191, 0),
            (0, 191, 191),
            (0, 191, 0),
            (191, 0, 191),
            (191, 0, 0),
            (0, 0, 191),
            (16, 16, 16),
        ]
        .iter()
        .map(|&(r, g, b)| rgb(r, g, b))
        .collect();
        let tile = noise_tile();
        // Square texels, TEXELS_ACROSS of them across the picture whatever its size.
        let period = (TILE * width / TEXELS_ACROSS).max(8);
        let stride = period + width;
        let mut texture = vec![0i8; period * stride];
        for (y, row) in texture.chunks_exact_mut(stride).enumerate() {
            let ty = y * TILE / period;
            for (x, v) in row.iter_mut().enumerate() {
                *v = tile[ty * TILE + (x % period) * TILE / period];
            }
        }
        Pattern {
            width,
            height,
            fps: fps.max(1),
            label: label.to_ascii_uppercase(),
            texture,
            period,
            bars,
            text_scale: (height / 120).max(1),
            grad_x: vec![0; width],
            chroma_u_x: vec![0; width / 2],
            chroma_v_x: vec![0; width / 2],
        }
    }

    /// Draws frame number `frame` into `out`, which must have this renderer's size.
    pub fn render(&mut self, frame: u64, out: &mut Yuv420) {
        assert_eq!(
            (out.width, out.height),
            (self.width, self.height),
            "frame buffer size differs from the pattern size"
        );
        let t = frame as f32 / self.fps as f32;
        self.background(t, out);
        self.bars(out);
        self.shapes(t, out);
        self.overlay(frame, out);
        if frame.is_multiple_of(u64::from(self.fps)) {
            let (x0, y0, x1, y1) = marker_rect(self.width, self.height);
            fill_rect(out, x0, y0, x1, y1, rgb(255, 255, 255));
        }
    }

    /// Gradient plus scrolling texture in luma, slowly drifting colour washes in chroma.
    fn background(&mut self, t: f32, out: &mut Yuv420) {
        let (w, h) = (self.width, self.height);
        // The texture pans by whole pixels: 31 and 13 texels per second.
        let pan_x = (t * 31.0 * self.period as f32 / TILE as f32) as usize % self.period;
        let pan_y = (t * 13.0 * self.period as f32 / TILE as f32) as usize;
        for x in 0..w {
            let u = x as f32 / w as f32 + 0.07 * t;
            self.grad_x[x] = 40 + (90.0 * triangle(u)) as i16;
        }
        let stride = self.period + w;
        let (yp, up, vp) = out.planes_mut();
        for (row_idx, row) in yp.chunks_exact_mut(w).enumerate() {
            let grad_y = (35.0 * triangle(row_idx as f32 / h as f32 * 0.8 - 0.03 * t)) as i16;
            let ty = (row_idx + pan_y) % self.period;
            let start = ty * stride + pan_x;
            let tex_row = &self.texture[start..start + w];
            for ((px, &g), &tex) in row.iter_mut().zip(&self.grad_x).zip(tex_row) {
                let v = g + grad_y + i16::from(tex);
                *px = v.clamp(16, 235) as u8;
            }
        }
        let (cw, ch) = (w / 2, h / 2);
        for x in 0..cw {
            let u = x as f32 / cw as f32;
            self.chroma_u_x[x] = (28.0 * (std::f32::consts::TAU * (u + 0.05 * t)).sin()) as i16;
            self.chroma_v_x[x] =
                (20.0 * (std::f32::consts::TAU * (0.7 * u - 0.04 * t)).cos()) as i16;
        }
        for y in 0..ch {
            let v = y as f32 / ch as f32;
            let uy = (18.0 * (std::f32::consts::TAU * (v * 0.6 + 0.03 * t)).cos()) as i16;
            let vy = (24.0 * (std::f32::consts::TAU * (v * 0.9 - 0.06 * t)).sin()) as i16;
            let urow = &mut up[y * cw..(y + 1) * cw];
            for (px, &ux) in urow.iter_mut().zip(&self.chroma_u_x) {
                *px = (128 + ux + uy).clamp(16, 240) as u8;
            }
            let vrow = &mut vp[y * cw..(y + 1) * cw];
            for (px, &vx) in vrow.iter_mut().zip(&self.chroma_v_x) {
                *px = (128 + vx + vy).clamp(16, 240) as u8;
            }
        }
    }

    /// A static strip of 75% colour bars along the bottom.
    fn bars(&self, out: &mut Yuv420) {
        let (w, h) = (self.width, self.height);
        let top = (h - h / 12) & !1;
        let n = self.bars.len();
        for (i, c) in self.bars.iter().enumerate() {
            let x0 = (w * i / n) & !1;
            let x1 = (w * (i + 1) / n) & !1;
            fill_rect(out, x0, top, x1, h, *c);
        }
    }

    /// Three shapes on different paths: a bouncing disc, a disc on a Lissajous curve, and a
    /// striped bar sliding across (wrapping around).
    fn shapes(&self, t: f32, out: &mut Yuv420) {
        let (w, h) = (self.width as f32, self.height as f32);
        let r = 0.12 * h;
        let cx = r + triangle(t / 7.3) * (w - 2.0 * r);
        let cy = r + triangle(t / 4.1 + 0.25) * (h * 0.9 - 2.0 * r);
        fill_disc(out, cx, cy, r, rgb(240, 140, 20));

        let r2 = 0.08 * h;
        let cx2 = w * (0.5 + 0.36 * (std::f32::consts::TAU * t / 4.7).sin());
        let cy2 = h * (0.45 + 0.3 * (std::f32::consts::TAU * t / 3.1 + 1.0).sin());
        fill_disc(out, cx2, cy2, r2, rgb(30, 200, 230));

        let bar_w = 0.3 * h;
        let bar_h = 0.1 * h;
        let period = w + bar_w;
        let x = ((t * 0.22 * w) % period) - bar_w;
        let y = 0.7 * h;
        let stripes = 6;
        for s in 0..stripes {
            let sx0 = x + bar_w * s as f32 / stripes as f32;
            let sx1 = x + bar_w * (s + 1) as f32 / stripes as f32;
            let colour = if s % 2 == 0 {
                rgb(220, 30, 200)
            } else {
                rgb(250, 250, 250)
            };
            fill_rect_f(out, sx0, y, sx1, y + bar_h, colour);
        }
    }

    /// The burned-in clock, frame counter and label on a dark box at the top left.
    fn overlay(&self, frame: u64, out: &mut Yuv420) {
        let ms_total = frame * 1000 / u64::from(self.fps);
        let (hh, mm, ss, ms) = (
            ms_total / 3_600_000,
            ms_total / 60_000 % 60,
            ms_total / 1000 % 60,
            ms_total % 1000,
        );
        let lines = [
            format!("T {hh:02}:{mm:02}:{ss:02}.{ms:03}"),
            format!("F {frame:06}"),
            self.label.clone(),
        ];
        let s = self.text_scale;
        let (cell_w, cell_h) = (6 * s, 9 * s);
        let cols = lines.iter().map(|l| l.len()).max().unwrap_or(0);
        let box_w = (cols * cell_w + 2 * s).min(self.width);
        let box_h = (lines.len() * cell_h + 2 * s).min(self.height);
        let (x0, y0) = ((2 * s) & !1, (2 * s) & !1);
        fill_rect(
            out,
            x0,
            y0,
            (x0 + box_w + 1).min(self.width) & !1,
            (y0 + box_h + 1).min(self.height) & !1,
            Yuv {
                y: 16,
                u: 128,
                v: 128,
            },
        );
        for (i, line) in lines.iter().enumerate() {
            draw_text(out, x0 + 2 * s, y0 + 2 * s + i * cell_h, s, line, 235);
        }
    }
}

/// The sync marker's box `(x0, y0, x1, y1)` (even, end-exclusive) in a `width`x`height` picture:
/// a quarter of the width and a third of the height at the upper right, clear of the clock.
pub fn marker_rect(width: usize, height: usize) -> (usize, usize, usize, usize) {
    let even = |v: usize| v & !1;
    (
        even(width * 70 / 100),
        even(height * 8 / 100),
        even(width * 95 / 100),
        even(height * 41 / 100),
    )
}

/// Frequency of the steady tone, Hz.
pub const TONE_HZ: u32 = 220;
/// Frequency of the beep at each whole second, Hz.
pub const BEEP_HZ: u32 = 1000;
/// Length of the beep, milliseconds.
pub const BEEP_MS: u32 = 45;

/// The test pattern's sound: a steady 220 Hz tone at -20 dBFS and, from each whole second, a
/// 45 ms 1 kHz beep at -6 dBFS with 2 ms raised-cosine edges (no click, a sharp onset).
#[derive(Debug, Clone, Copy)]
pub struct PatternAudio {
    sample_rate: u32,
    channels: u32,
}

impl PatternAudio {
    /// The sound at `sample_rate` with `channels` identical channels.
    pub fn new(sample_rate: u32, channels: u32) -> PatternAudio {
        PatternAudio {
            sample_rate: sample_rate.max(1),
            channels: channels.max(1),
        }
    }

    /// One sample (all channels alike) at sample index `n` from the start of the title.
    pub fn sample(&self, n: u64) -> i16 {
        let rate = u64::from(self.sample_rate);
        // Both frequencies are whole hertz: the phase repeats every second, which keeps it exact
        // however long the title.
        let within = n % rate;
        let phase = |hz: u32| {
            std::f64::consts::TAU * ((within * u64::from(hz)) % rate) as f64 / rate as f64
        };
        let mut v = 0.1 * phase(TONE_HZ).sin();
        let beep_len = rate * u64::from(BEEP_MS) / 1000;
        if within < beep_len {
            let ramp = (rate * 2 / 1000).max(1);
            let edge = within.min(beep_len - 1 - within);
            let gain = if edge < ramp {
                0.5 - 0.5 * (std::f64::consts::PI * edge as f64 / ramp as f64).cos()
            } else {
                1.0
            };
            v += 0.5 * gain * phase(BEEP_HZ).sin();
        }
        (v * 32767.0).round() as i16
    }

    /// Fills `out` (interleaved, a whole number of sample frames) from sample index `first`.
    pub fn fill(&self, first: u64, out: &mut [i16]) {
        let ch = self.channels as usize;
        for (i, frame) in out.chunks_mut(ch).enumerate() {
            frame.fill(self.sample(first + i as u64));
        }
    }
}

/// 0 -> 0, 0.5 -> 1, 1 -> 0, periodic.
fn triangle(u: f32) -> f32 {
    let f = u - u.floor();
    1.0 - (2.0 * f - 1.0).abs()
}

/// A seamless 256x256 noise texture with values in about -24..24: white noise blurred twice
/// (wrapping around), then a finer layer of noise on top.
fn noise_tile() -> Vec<i8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let coarse: Vec<i32> = (0..TILE * TILE)
        .map(|_| (next() % 256) as i32 - 128)
        .collect();
    let blur = |src: &[i32]| -> Vec<i32> {
        let mut dst = vec![0i32; TILE * TILE];
        for y in 0..TILE {
            for x in 0..TILE {
                let mut sum = 0;
                for dy in [TILE - 1, 0, 1] {
                    for dx in [TILE - 1, 0, 1] {
                        sum += src[((y + dy) % TILE) * TILE + (x + dx) % TILE];
                    }
                }
                dst[y * TILE + x] = sum / 9;
            }
        }
        dst
    };
    let smooth = blur(&blur(&coarse));
    smooth
        .iter()
        .map(|&v| {
            let fine = (next() % 13) as i32 - 6;
            (v * 24 / 40 + fine).clamp(-30, 30) as i8
        })
        .collect()
}

/// Fills `[x0, x1) x [y0, y1)` (even coordinates) with a colour, in luma and chroma.
fn fill_rect(out: &mut Yuv420, x0: usize, y0: usize, x1: usize, y1: usize, c: Yuv) {
    let (w, h) = (out.width, out.height);
    let (x1, y1) = (x1.min(w), y1.min(h));
    if x0 >= x1 || y0 >= y1 {
        return;
    }
    let (yp, up, vp) = out.planes_mut();
    for row in yp.chunks_exact_mut(w).take(y1).skip(y0) {
        row[x0..x1].fill(c.y);
    }
    let cw = w / 2;
    let (cx0, cx1) = (x0 / 2, x1.div_ceil(2).min(cw));
    for y in y0 / 2..y1.div_ceil(2).min(h / 2) {
        up[y * cw + cx0..y * cw + cx1].fill(c.u);
        vp[y * cw + cx0..y * cw + cx1].fill(c.v);
    }
}

/// Like [`fill_rect`] with fractional, possibly off-screen coordinates.
fn fill_rect_f(out: &mut Yuv420, x0: f32, y0: f32, x1: f32, y1: f32, c: Yuv) {
    let clampx = |v: f32| (v.max(0.0) as usize).min(out.width) & !1;
    let clampy = |v: f32| (v.max(0.0) as usize).min(out.height) & !1;
    fill_rect(out, clampx(x0), clampy(y0), clampx(x1), clampy(y1), c);
}

/// Fills a disc, row by row, in luma and (at half resolution) chroma.
fn fill_disc(out: &mut Yuv420, cx: f32, cy: f32, r: f32, c: Yuv) {
    let (w, h) = (out.width, out.height);
    let (yp, up, vp) = out.planes_mut();
    let span = |cx: f32, cy: f32, r: f32, y: usize, limit: usize| -> Option<(usize, usize)> {
        let dy = y as f32 + 0.5 - cy;
        if dy.abs() >= r {
            return None;
        }
        let half = (r * r - dy * dy).sqrt();
        let x0 = (cx - half).max(0.0).round() as usize;
        let x1 = ((cx + half).max(0.0).round() as usize).min(limit);
        (x0 < x1).then_some((x0, x1))
    };
    let y_top = (cy - r).max(0.0) as usize;
    let y_bot = ((cy + r).max(0.0) as usize + 1).min(h);
    for y in y_top..y_bot {
        if let Some((x0, x1)) = span(cx, cy, r, y, w) {
            yp[y * w + x0..y * w + x1].fill(c.y);
        }
    }
    let (cw, ch) = (w / 2, h / 2);
    let (ccx, ccy, cr) = (cx / 2.0, cy / 2.0, r / 2.0);
    let y_top = (ccy - cr).max(0.0) as usize;
    let y_bot = ((ccy + cr).max(0.0) as usize + 1).min(ch);
    for y in y_top..y_bot {
        if let Some((x0, x1)) = span(ccx, ccy, cr, y, cw) {
            up[y * cw + x0..y * cw + x1].fill(c.u);
            vp[y * cw + x0..y * cw + x1].fill(c.v);
        }
    }
}

/// Draws `text` in luma with the 5x7 font, each font pixel `scale` pixels square.
fn draw_text(out: &mut Yuv420, x: usize, y: usize, scale: usize, text: &str, luma: u8) {
    let w = out.width;
    let h = out.height;
    let (yp, _, _) = out.planes_mut();
    for (i, ch) in text.chars().enumerate() {
        let glyph = glyph(ch);
        let gx = x + i * 6 * scale;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..5 {
                if bits & (0x10 >> col) == 0 {
                    continue;
                }
                let px = gx + col * scale;
                let py = y + row * scale;
                for yy in py..(py + scale).min(h) {
                    let start = px.min(w);
                    let end = (px + scale).min(w);
                    yp[yy * w + start..yy * w + end].fill(luma);
                }
            }
        }
    }
}

/// The 5x7 bitmap of a character (bit 4 is the leftmost column); '?' for unknown characters.
fn glyph(c: char) -> [u8; 7] {
    match c {
        '0' => [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e],
        '1' => [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e],
        '2' => [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f],
        '3' => [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e],
        '4' => [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02],
        '5' => [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e],
        '6' => [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e],
        '7' => [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e],
        '9' => [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c],
        'A' => [0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11],
        'B' => [0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e],
        'C' => [0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e],
        'D' => [0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c],
        'E' => [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f],
        'F' => [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10],
        'G' => [0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f],
        'H' => [0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11],
        'I' => [0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f],
        'M' => [0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
        'P' => [0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10],
        'Q' => [0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d],
        'R' => [0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11],
        'S' => [0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e],
        'T' => [0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a],
        'X' => [0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0a, 0x04, 0x04, 0x04],
        'Z' => [0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f],
        ':' => [0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c],
        '/' => [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00],
        '-' => [0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00],
        '@' => [0x0e, 0x11, 0x17, 0x15, 0x17, 0x10, 0x0e],
        ' ' => [0; 7],
        _ => [0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sad(a: &Yuv420, b: &Yuv420) -> u64 {
        a.data()
            .iter()
            .zip(b.data())
            .map(|(&x, &y)| u64::from(x.abs_diff(y)))
            .sum()
    }

    #[test]
    fn frames_move_and_are_deterministic() {
        let mut p = Pattern::new(426, 240, 30, "240P");
        let (mut a, mut b, mut c) = (
            Yuv420::new(426, 240),
            Yuv420::new(426, 240),
            Yuv420::new(426, 240),
        );
        p.render(10, &mut a);
        p.render(11, &mut b);
        p.render(10, &mut c);
        assert_eq!(a.data(), c.data(), "same frame number, same picture");
        let per_pixel = sad(&a, &b) as f64 / a.data().len() as f64;
        assert!(
            per_pixel > 1.0,
            "consecutive frames barely differ: {per_pixel}"
        );
    }

    #[test]
    fn planes_stay_in_limited_range_and_have_texture() {
        let mut p = Pattern::new(640, 360, 30, "360P 800K");
        let mut f = Yuv420::new(640, 360);
        p.render(1234, &mut f);
        let (y, u, v) = f.planes();
        assert!(y.iter().all(|&s| (16..=235).contains(&s)));
        assert!(u.iter().chain(v).all(|&s| (16..=240).contains(&s)));
        let distinct = y.iter().collect::<std::collections::HashSet<_>>().len();
        assert!(distinct > 100, "only {distinct} luma levels");
    }

    #[test]
    fn burned_in_clock_changes_with_the_frame_number() {
        let mut p = Pattern::new(1280, 720, 30, "X");
        let (mut a, mut b) = (Yuv420::new(1280, 720), Yuv420::new(1280, 720));
        p.render(0, &mut a);
        p.render(1, &mut b);
        // The clock digits live in the overlay box at the top left; compare only that area,
        // with the background (which also moves) masked out by looking at text-white pixels.
        let box_rows = 3 * 9 * 6;
        let white = |f: &Yuv420| {
            f.planes().0[..box_rows * 1280]
                .chunks(1280)
                .map(|r| r[..400].iter().filter(|&&p| p == 235).count())
                .sum::<usize>()
        };
        assert!(white(&a) > 0);
        let text_diff = a.planes().0[..box_rows * 1280]
            .chunks(1280)
            .zip(b.planes().0.chunks(1280))
            .flat_map(|(ra, rb)| ra[..400].iter().zip(&rb[..400]))
            .filter(|(&x, &y)| (x == 235) != (y == 235))
            .count();
        assert!(text_diff > 0, "frame counter not visible");
    }

    #[test]
    fn marker_box_is_white_on_whole_seconds_only() {
        let mut p = Pattern::new(320, 180, 30, "180P");
        let mut f = Yuv420::new(320, 180);
        let (x0, y0, x1, y1) = marker_rect(320, 180);
        assert!(x1 - x0 >= 64 && y1 - y0 >= 48 && x1 <= 320 && y1 <= 180);
        let box_mean = |f: &Yuv420| {
            let y = f.planes().0;
            let mut sum = 0u64;
            for row in y0..y1 {
                sum += y[row * 320 + x0..row * 320 + x1]
                    .iter()
                    .map(|&v| u64::from(v))
                    .sum::<u64>();
            }
            sum / ((x1 - x0) * (y1 - y0)) as u64
        };
        for frame in 0..95 {
            p.render(frame, &mut f);
            let mean = box_mean(&f);
            if frame % 30 == 0 {
                assert_eq!(mean, 235, "frame {frame}");
            } else {
                assert!(mean < 190, "frame {frame}: {mean}");
            }
        }
    }

    #[test]
    fn sound_is_a_tone_with_a_beep_at_each_second() {
        let a = PatternAudio::new(48_000, 2);
        let mut buf = vec![0i16; 2 * 96_000];
        a.fill(0, &mut buf);
        assert!(buf.chunks(2).all(|c| c[0] == c[1]), "channels alike");
        let peak = |from: usize, to: usize| {
            buf[2 * from..2 * to]
                .iter()
                .map(|s| s.unsigned_abs())
                .max()
                .unwrap()
        };
        // The tone alone peaks at -20 dBFS, the beep adds -6 dBFS for 45 ms after each second.
        assert!((3200..=3300).contains(&peak(100 * 48, 900 * 48)));
        assert!(peak(48_000 + 5 * 48, 48_000 + 40 * 48) > 15_000);
        assert!(peak(48_000 + 46 * 48, 48_000 + 900 * 48) < 3300);
        // A gentle but quick onset: quiet before the second, loud 2 ms after it.
        assert!(peak(48_000 - 48, 48_000) < 3300);
        // Sample-exact and the same from any starting point.
        let mut later = vec![0i16; 2 * 1000];
        a.fill(47_500, &mut later);
        assert_eq!(&later[..], &buf[2 * 47_500..2 * 48_500]);
        // Mono, and a late start: the phase is exact after hours.
        let m = PatternAudio::new(44_100, 1);
        assert_eq!(m.sample(3_600 * 44_100 + 10), m.sample(10));
    }

    #[test]
    fn tiny_pictures_do_not_panic() {
        let mut p = Pattern::new(16, 16, 1, "A VERY LONG LABEL THAT DOES NOT FIT");
        let mut f = Yuv420::new(16, 16);
        for n in [0, 1, 1_000_000] {
            p.render(n, &mut f);
        }
    }

    #[test]
    fn rgb_to_yuv_matches_bt709_limited_range() {
        let white = rgb(255, 255, 255);
        assert_eq!((white.y, white.u, white.v), (235, 128, 128));
        let black = rgb(0, 0, 0);
        assert_eq!((black.y, black.u, black.v), (16, 128, 128));
        let red = rgb(255, 0, 0);
        assert_eq!((red.y, red.u, red.v), (63, 102, 240));
    }
}
