//! The sweep's plots, each written as PNG and SVG with plotters: shootdown latency vs
//! CPUs per strategy, latency CDFs, the cost breakdown, IPIs per shootdown and the
//! mm_cpumask weight over time. Text uses the embedded DejaVu Sans, so plots render
//! the same on a machine without fonts.

use crate::summary::PointFile;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

/// The font every plot uses (Bitstream Vera licence: reports/assets/DejaVuSans.LICENSE).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType font; failure would only lose the labels.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// A plot that was written, for the HTML report.
#[derive(Clone, Debug)]
pub struct PlotFile {
    /// File stem: `STEM.png` and `STEM.svg` exist in the report directory.
    pub stem: String,
    /// What it shows.
    pub title: String,
    /// Workload and profile it belongs to.
    pub group: String,
}

/// A line colour per strategy (colour-blind-safe Tableau 10), by position.
const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

fn colour(i: usize) -> RGBColor {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

type DrawResult = Result<(), String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Something that draws itself on any backend.
trait Figure {
    fn size(&self) -> (u32, u32) {
        (1100, 650)
    }
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult;
}

/// Draws a figure in memory and writes `STEM.png` and `STEM.svg` atomically (a
/// temporary file renamed over the old one), so that a kill during the report never
/// leaves a partial or empty plot behind for index.html to reference.
fn emit(dir: &Path, stem: &str, fig: &impl Figure) -> anyhow::Result<()> {
    use image::ImageEncoder;
    register_font();
    let (w, h) = fig.size();
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let area = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        fig.draw(&area).map_err(|e| anyhow::anyhow!("{stem}.png: {e}"))?;
        area.present().map_err(|e| anyhow::anyhow!("{stem}.png: {e}"))?;
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&rgb, w, h, image::ColorType::Rgb8)
        .map_err(|e| anyhow::anyhow!("{stem}.png: {e}"))?;
    crate::write_atomic(&dir.join(format!("{stem}.png")), &png)?;
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        fig.draw(&area).map_err(|e| anyhow::anyhow!("{stem}.svg: {e}"))?;
        area.present().map_err(|e| anyhow::anyhow!("{stem}.svg: {e}"))?;
    }
    crate::write_atomic(&dir.join(format!("{stem}.svg")), svg.as_bytes())
}

/// One strategy's points of a group, ordered by core count.
struct Series<'a> {
    label: String,
    invlpgb: bool,
    points: Vec<&'a PointFile>,
}

/// The points of one workload on one profile, by strategy.
struct Group<'a> {
    workload: String,
    profile: String,
    series: Vec<Series<'a>>,
    max_cores: usize,
}

fn groups<'a>(results: &[&'a PointFile]) -> Vec<Group<'a>> {
    let mut out: Vec<Group<'a>> = Vec::new();
    for r in results.iter().copied().filter(|r| r.ok() && r.summary.is_some()) {
        let p = &r.point;
        // Arguments are part of the group: different sizes are different workloads.
        let workload = p.label.clone();
        let gi = match out.iter().position(|g| g.workload == workload && g.profile == p.profile) {
            Some(i) => i,
            None => {
                out.push(Group {
                    workload,
                    profile: p.profile.clone(),
                    series: Vec::new(),
                    max_cores: 0,
                });
                out.len() - 1
            }
        };
        let g = &mut out[gi];
        g.max_cores = g.max_cores.max(p.cores);
        let label = p.strategy();
        match g.series.iter_mut().find(|s| s.label == label) {
            Some(s) => s.points.push(r),
            None => g.series.push(Series { label, invlpgb: p.flush == "invlpgb", points: vec![r] }),
        }
    }
    for g in &mut out {
        for s in &mut g.series {
            // One point per core count (the first seed), in order.
            s.points.sort_by_key(|r| (r.point.cores, r.point.seed));
            s.points.dedup_by_key(|r| r.point.cores);
        }
        // In a group that compares walker-sync strategies the default one is named too.
        let default = |r: &&PointFile| r.point.walker_sync == crate::spec::DEFAULT_WALKER_SYNC;
        if g.series.iter().any(|s| !s.points.iter().all(default)) {
            for s in g.series.iter_mut().filter(|s| s.points.iter().all(default)) {
                s.label = format!("{}/walker-{}", s.label, crate::spec::DEFAULT_WALKER_SYNC);
            }
        }
    }
    out
}

fn file_safe(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

/// Writes every plot of the sweep into `dir`; returns them in report order.
pub fn render_all(dir: &Path, results: &[&PointFile]) -> anyhow::Result<Vec<PlotFile>> {
    let mut out = Vec::new();
    for g in groups(results) {
        let name = format!("{} on {}", g.workload, g.profile);
        let base = file_safe(&format!("{}_{}", g.workload, g.profile));
        let mut add =
            |kind: &str, title: String, fig: &dyn Fn(&Path, &str) -> anyhow::Result<()>| {
                let stem = format!("{kind}_{base}");
                fig(dir, &stem)?;
                out.push(PlotFile { stem, title, group: name.clone() });
                anyhow::Ok(())
            };
        let multi_core = g.series.iter().any(|s| s.points.iter().any(|r| r.point.cores > 1));
        if multi_core {
            add("latency", format!("{name}: shootdown latency vs CPUs"), &|d, s| {
                emit(
                    d,
                    s,
                    &LatencyVsCores {
                        g: &g,
                        title: format!("{name}: shootdown latency (mean; band p50-p99)"),
                    },
                )
            })?;
            add(
                "ipis",
                format!("{name}: flush targets and IPIs per shootdown vs CPUs"),
                &|d, s| {
                    emit(
                        d,
                        s,
                        &PanelsVsCores {
                            g: &g,
                            title: format!("{name}: flush targets and IPIs per shootdown"),
                            panels: IPI_PANELS,
                        },
                    )
                },
            )?;
            // The lazy-mm figures, when the sweep varies the policy.
            let lazy_axis = g
                .series
                .iter()
                .any(|s| s.points.iter().any(|r| r.point.lazy_mm != crate::spec::DEFAULT_LAZY_MM));
            if lazy_axis {
                add(
                    "lazymm",
                    format!("{name}: context switches, mm_count atomics and lazy-mm IPIs vs CPUs"),
                    &|d, s| {
                        emit(
                            d,
                            s,
                            &PanelsVsCores {
                                g: &g,
                                title: format!("{name}: lazy-TLB mm references"),
                                panels: LAZY_PANELS,
                            },
                        )
                    },
                )?;
            }
            // The walker-sync figures, when the sweep varies the strategy.
            let walker_axis = g.series.iter().any(|s| {
                s.points.iter().any(|r| r.point.walker_sync != crate::spec::DEFAULT_WALKER_SYNC)
            });
            if walker_axis {
                add(
                    "walkersync",
                    format!(
                        "{name}: page-table retire cost, CPUs interrupted, GUP-fast cost and \
                         grace periods vs CPUs"
                    ),
                    &|d, s| {
                        emit(
                            d,
                            s,
                            &PanelsVsCores {
                                g: &g,
                                title: format!("{name}: page-table walker synchronisation"),
                                panels: WALKER_PANELS,
                            },
                        )
                    },
                )?;
            }
        }
        let n = g.max_cores;
        add("cdf", format!("{name}: latency CDF at {n} CPUs"), &|d, s| {
            emit(d, s, &Cdf { g: &g, title: format!("{name}: shootdown latency CDF at {n} CPUs") })
        })?;
        add("breakdown", format!("{name}: cost per shootdown at {n} CPUs"), &|d, s| {
            emit(
                d,
                s,
                &Breakdown { g: &g, title: format!("{name}: cost per shootdown at {n} CPUs") },
            )
        })?;
        add("cpumask", format!("{name}: mm_cpumask weight over time at {n} CPUs"), &|d, s| {
            emit(
                d,
                s,
                &CpumaskWeight {
                    g: &g,
                    title: format!("{name}: mm_cpumask weight of the workload's mm at {n} CPUs"),
                },
            )
        })?;
    }
    Ok(out)
}

fn at_max<'a>(s: &Series<'a>, cores: usize) -> Option<&'a PointFile> {
    s.points.iter().copied().find(|r| r.point.cores == cores)
}

/// Axis numbers: plain below 10,000, then with a k or M suffix.
fn compact(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6).replace(".0M", "M")
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3).replace(".0k", "k")
    } else {
        format!("{v:.0}")
    }
}

/// Log-axis bounds padded around [lo, hi].
fn log_bounds(lo: f64, hi: f64) -> (f64, f64) {
    let lo = lo.max(1.0);
    let hi = hi.max(lo * 2.0);
    (lo / 1.25, hi * 1.25)
}

fn legend<'a, DB: DrawingBackend + 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    pos: SeriesLabelPosition,
) -> DrawResult {
    chart
        .configure_series_labels()
        .position(pos)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(err)
}

/// The legend's line sample: solid for IPI strategies, broken for INVLPGB ones.
macro_rules! legend_mark {
    ($c:expr, $dashed:expr) => {{
        let (c, gap) = ($c, if $dashed { 5 } else { 0 });
        move |(x, y): (i32, i32)| {
            EmptyElement::at((x, y))
                + PathElement::new(vec![(0, 0), (8, 0)], c.stroke_width(2))
                + PathElement::new(vec![(8 + gap, 0), (20, 0)], c.stroke_width(2))
        }
    }};
}

struct LatencyVsCores<'a> {
    g: &'a Group<'a>,
    title: String,
}

/// One strategy's line with its legend entry: solid for IPIs, dashed for INVLPGB, and
/// a dot at each point when `markers`.
fn strategy_line<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    s: &Series<'_>,
    c: RGBColor,
    line: Vec<(f64, f64)>,
    markers: bool,
) -> DrawResult
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let style = c.stroke_width(2);
    let anno = if s.invlpgb {
        chart.draw_series(DashedLineSeries::new(line.clone(), 8, 5, style)).map_err(err)?
    } else {
        chart.draw_series(LineSeries::new(line.clone(), style)).map_err(err)?
    };
    anno.label(&s.label).legend(legend_mark!(c, s.invlpgb));
    if markers {
        chart
            .draw_series(line.iter().map(|&(x, y)| Circle::new((x, y), 3, c.filled())))
            .map_err(err)?;
    }
    Ok(())
}

/// Ticks at 1, 2 and 5 times the powers of ten within [lo, hi].
fn ticks_125(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut decade = 10f64.powf(lo.max(1.0).log10().floor());
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = decade * m;
            if v >= lo && v <= hi {
                out.push(v);
            }
        }
        decade *= 10.0;
    }
    out
}

fn latency_rows(s: &Series<'_>) -> Vec<(f64, f64, f64, f64)> {
    s.points
        .iter()
        .filter_map(|r| r.summary.as_ref().map(|m| (r.point.cores as f64, m)))
        .filter(|(_, m)| m.remote_shootdowns > 0)
        .map(|(x, m)| (x, m.latency_mean, m.latency_p50 as f64, m.latency_p99 as f64))
        .collect()
}

impl Figure for LatencyVsCores<'_> {
    fn size(&self) -> (u32, u32) {
        let panels = self.panels().len() as u32;
        (if panels > 1 { 1500 } else { 1100 }, 680)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult {
        area.fill(&WHITE).map_err(err)?;
        let rows: Vec<(f64, f64, f64, f64)> =
            self.g.series.iter().flat_map(|s| latency_rows(s)).collect();
        let lo = rows.iter().map(|p| p.1.min(p.2)).fold(f64::INFINITY, f64::min);
        let hi = rows.iter().map(|p| p.1.max(p.3)).fold(0.0, f64::max);
        let (ylo, yhi) = log_bounds(if lo.is_finite() { lo } else { 100.0 }, hi);
        let xmax = (self.g.max_cores as f64).max(2.0);
        let (top, body) = area.split_vertically(45);
        top.titled(&self.title, ("sans-serif", 22)).map_err(err)?;
        let panels = self.panels();
        let areas = body.split_evenly((1, panels.len()));
        for ((name, members), pa) in panels.iter().zip(areas.iter()) {
            let mut chart = ChartBuilder::on(pa)
                .caption(name, ("sans-serif", 16))
                .margin(12)
                .x_label_area_size(55)
                .y_label_area_size(80)
                .build_cartesian_2d(
                    (1f64..xmax * 1.15).log_scale().base(2.0),
                    (ylo..yhi).log_scale().with_key_points(ticks_125(ylo, yhi)),
                )
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc("CPUs (log scale)")
                .y_desc("initiator latency, cycles (log scale)")
                .x_label_formatter(&|x| format!("{}", x.round() as u64))
                .y_label_formatter(&|y| compact(*y))
                .axis_desc_style(("sans-serif", 16))
                .label_style(("sans-serif", 14))
                .light_line_style(BLACK.mix(0.05))
                .draw()
                .map_err(err)?;
            for &i in members {
                let s = &self.g.series[i];
                let c = colour(i);
                let rows = latency_rows(s);
                if rows.is_empty() {
                    continue;
                }
                if rows.len() > 1 {
                    let mut band: Vec<(f64, f64)> = rows.iter().map(|r| (r.0, r.2)).collect();
                    band.extend(rows.iter().rev().map(|r| (r.0, r.3)));
                    chart
                        .draw_series(std::iter::once(Polygon::new(band, c.mix(0.12))))
                        .map_err(err)?;
                }
                let line: Vec<(f64, f64)> = rows.iter().map(|r| (r.0, r.1)).collect();
                strategy_line(&mut chart, s, c, line, true)?;
            }
            legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        }
        Ok(())
    }
}

impl LatencyVsCores<'_> {
    /// One panel per flush transport, so that the bands of a handful of strategies
    /// overlap rather than those of all of them.
    fn panels(&self) -> Vec<(String, Vec<usize>)> {
        let mut out: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, s) in self.g.series.iter().enumerate() {
            let name = if s.invlpgb { "flush: INVLPGB" } else { "flush: IPIs" };
            match out.iter_mut().find(|p| p.0 == name) {
                Some(p) => p.1.push(i),
                None => out.push((name.to_string(), vec![i])),
            }
        }
        out
    }
}

/// Picks one figure of a point's summary.
type Pick = fn(&crate::summary::Summary) -> f64;

/// Side-by-side panels of per-point figures vs CPUs, one line per strategy.
struct PanelsVsCores<'a> {
    g: &'a Group<'a>,
    title: String,
    /// (caption, y-axis description, the figure) of each panel.
    panels: &'static [(&'static str, &'static str, Pick)],
}

/// Flush targets and IPIs per shootdown.
const IPI_PANELS: &[(&str, &str, Pick)] = &[
    ("remote CPUs a flush was queued for", "targets per shootdown", |m| m.targets_per_shootdown),
    ("IPIs sent (a CPU with calls queued already gets none)", "IPIs per shootdown", |m| {
        m.ipis_per_shootdown
    }),
];

/// Lazy-TLB mm references: switch rate, mm_count atomics per switch, IPIs per exit.
const LAZY_PANELS: &[(&str, &str, Pick)] = &[
    ("context switches per simulated second", "switches per second", |m| {
        if m.simulated_ns == 0 {
            0.0
        } else {
            m.context_switches as f64 * 1e9 / m.simulated_ns as f64
        }
    }),
    ("mm_count atomics per context switch", "atomics per switch", |m| m.atomics_per_switch),
    ("lazy-mm shootdown IPIs per final mmdrop (exit)", "IPIs per exit", |m| m.lazy_ipis_per_mmdrop),
];

/// Page-table walker synchronisation: the unmapping CPU's cost and the CPUs it
/// interrupts per retire event, the cost of a GUP-fast walk, the RCU grace periods.
const WALKER_PANELS: &[(&str, &str, Pick)] = &[
    ("initiator cycles per page-table retire event", "cycles per retire event", |m| {
        m.walker_cost_per_retire
    }),
    ("CPUs interrupted per retire event", "CPUs per retire event", |m| {
        m.walker_interrupted_per_retire
    }),
    ("cycles per GUP-fast walk (interrupts off)", "cycles per walk", |m| {
        m.gup_fast_cycles_per_walk
    }),
    ("RCU grace periods", "grace periods", |m| m.grace_periods as f64),
];

impl PanelsVsCores<'_> {
    /// Rows and columns: one row of up to three panels, two rows beyond.
    fn layout(&self) -> (usize, usize) {
        let n = self.panels.len().max(1);
        if n <= 3 {
            (1, n)
        } else {
            (2, n.div_ceil(2))
        }
    }
}

impl Figure for PanelsVsCores<'_> {
    fn size(&self) -> (u32, u32) {
        let (rows, cols) = self.layout();
        (750 * cols as u32, 45 + 605 * rows as u32)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult {
        area.fill(&WHITE).map_err(err)?;
        let (top, body) = area.split_vertically(45);
        top.titled(&self.title, ("sans-serif", 22)).map_err(err)?;
        let parts = body.split_evenly(self.layout());
        let xmax = (self.g.max_cores as f64).max(2.0);
        for ((caption, ydesc, pick), pa) in self.panels.iter().zip(parts.iter()) {
            let ymax = self
                .g
                .series
                .iter()
                .flat_map(|s| s.points.iter())
                .filter_map(|r| r.summary.as_ref())
                .map(pick)
                .fold(1.0, f64::max);
            let mut chart = ChartBuilder::on(pa)
                .caption(*caption, ("sans-serif", 16))
                .margin(12)
                .x_label_area_size(55)
                .y_label_area_size(60)
                .build_cartesian_2d((1f64..xmax * 1.15).log_scale().base(2.0), 0f64..ymax * 1.1)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc("CPUs (log scale)")
                .y_desc(*ydesc)
                .x_label_formatter(&|x| format!("{}", x.round() as u64))
                .y_label_formatter(&|y| {
                    if y.abs() >= 1e4 {
                        compact(*y)
                    } else if y.fract() == 0.0 {
                        format!("{y:.0}")
                    } else {
                        format!("{y:.1}")
                    }
                })
                .axis_desc_style(("sans-serif", 16))
                .label_style(("sans-serif", 14))
                .light_line_style(BLACK.mix(0.05))
                .draw()
                .map_err(err)?;
            for (i, s) in self.g.series.iter().enumerate() {
                let c = colour(i);
                let line: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .filter_map(|r| r.summary.as_ref().map(|m| (r.point.cores as f64, pick(m))))
                    .collect();
                strategy_line(&mut chart, s, c, line, true)?;
            }
            legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        }
        Ok(())
    }
}

/// Cumulative fractions at the upper edge of each histogram bucket.
fn cdf_points(hist: &serde_json::Value) -> Vec<(f64, f64)> {
    let buckets: Vec<(f64, f64)> = hist
        .as_array()
        .map(|a| {
            a.iter().filter_map(|b| Some((b.get(0)?.as_f64()?, b.get(1)?.as_f64()?))).collect()
        })
        .unwrap_or_default();
    let total: f64 = buckets.iter().map(|b| b.1).sum();
    if total == 0.0 {
        return Vec::new();
    }
    let mut out = vec![(buckets[0].0.max(1.0), 0.0)];
    let mut cum = 0.0;
    for (lb, n) in buckets {
        cum += n;
        // Buckets of 16 and up span 1/8 of their lower bound; below, one value.
        let ub = if lb >= 16.0 { lb * 1.125 } else { lb + 1.0 };
        out.push((ub.max(1.0), cum / total));
    }
    out
}

struct Cdf<'a> {
    g: &'a Group<'a>,
    title: String,
}

impl Figure for Cdf<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult {
        area.fill(&WHITE).map_err(err)?;
        let curves: Vec<(usize, &Series<'_>, Vec<(f64, f64)>)> = self
            .g
            .series
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let r = at_max(s, self.g.max_cores)?;
                let pts = cdf_points(&r.stats.as_ref()?["shootdown_latency_histogram"]);
                (!pts.is_empty()).then_some((i, s, pts))
            })
            .collect();
        let lo = curves.iter().flat_map(|c| c.2.iter().map(|p| p.0)).fold(f64::INFINITY, f64::min);
        let hi = curves.iter().flat_map(|c| c.2.iter().map(|p| p.0)).fold(0.0, f64::max);
        let (xlo, xhi) = log_bounds(if lo.is_finite() { lo } else { 100.0 }, hi);
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(55)
            .y_label_area_size(70)
            .build_cartesian_2d(
                (xlo..xhi).log_scale().with_key_points(ticks_125(xlo, xhi)),
                0f64..1.02,
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("initiator latency, cycles (log scale)")
            .y_desc("fraction of shootdowns")
            .x_label_formatter(&|x| compact(*x))
            .y_label_formatter(&|y| format!("{y:.1}"))
            .axis_desc_style(("sans-serif", 16))
            .label_style(("sans-serif", 14))
            .light_line_style(BLACK.mix(0.05))
            .draw()
            .map_err(err)?;
        if curves.is_empty() {
            area.draw(&Text::new(
                "no shootdown reached another CPU",
                (300, 300),
                ("sans-serif", 20).into_font(),
            ))
            .map_err(err)?;
        }
        for (i, s, pts) in curves {
            strategy_line(&mut chart, s, colour(i), pts, false)?;
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    }
}

struct Breakdown<'a> {
    g: &'a Group<'a>,
    title: String,
}

/// The cost components of a shootdown, in stacking order.
const COMPONENTS: [&str; 5] = [
    "initiator work (queue, send, local flush, INVLPGB/TLBSYNC)",
    "initiator waits: IPI delivery to the slowest target",
    "initiator waits: remote flush and ack",
    "victims interrupted (entry, flush, exit)",
    "TLB refills afterwards (page walks)",
];

impl Figure for Breakdown<'_> {
    fn size(&self) -> (u32, u32) {
        (1100, 250 + 42 * self.g.series.len() as u32)
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult {
        area.fill(&WHITE).map_err(err)?;
        let rows: Vec<(String, [f64; 5])> = self
            .g
            .series
            .iter()
            .filter_map(|s| {
                let m = at_max(s, self.g.max_cores)?.summary.as_ref()?;
                Some((
                    s.label.clone(),
                    [
                        m.initiator_cycles,
                        m.ipi_delivery_cycles,
                        m.ack_wait_cycles - m.ipi_delivery_cycles,
                        m.victim_cycles,
                        m.refill_cycles,
                    ],
                ))
            })
            .collect();
        let n = rows.len().max(1);
        let xmax = rows.iter().map(|r| r.1.iter().sum::<f64>()).fold(1.0, f64::max) * 1.05;
        let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        let (plot, key) = area.split_vertically(area.dim_in_pixel().1 - 125);
        let mut chart = ChartBuilder::on(&plot)
            .caption(&self.title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(160)
            .build_cartesian_2d(0f64..xmax, (0..n - 1).into_segmented())
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("cycles per shootdown (all CPUs)")
            .x_label_formatter(&|x| compact(*x))
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .axis_desc_style(("sans-serif", 16))
            .label_style(("sans-serif", 14))
            .light_line_style(BLACK.mix(0.05))
            .draw()
            .map_err(err)?;
        for (row, (_, parts)) in rows.iter().enumerate() {
            let mut x0 = 0.0;
            for (k, &v) in parts.iter().enumerate() {
                let mut r = Rectangle::new(
                    [(x0, SegmentValue::Exact(row)), (x0 + v, SegmentValue::Exact(row + 1))],
                    colour(k).filled(),
                );
                r.set_margin(6, 6, 0, 0);
                chart.draw_series(std::iter::once(r)).map_err(err)?;
                x0 += v;
            }
        }
        // The key, in its own strip below the chart.
        for (k, name) in COMPONENTS.iter().enumerate() {
            let (col, line) = ((k % 2) as i32, (k / 2) as i32);
            let (x, y) = (170 + col * 460, 20 + line * 30);
            key.draw(&Rectangle::new([(x, y), (x + 18, y + 14)], colour(k).filled()))
                .map_err(err)?;
            key.draw(&Text::new(*name, (x + 26, y), ("sans-serif", 14).into_font()))
                .map_err(err)?;
        }
        Ok(())
    }
}

struct CpumaskWeight<'a> {
    g: &'a Group<'a>,
    title: String,
}

/// The mm_cpumask weight samples of the run's first mm: (ms, weight) as a step line.
fn weight_steps(stats: &serde_json::Value) -> Vec<(f64, f64)> {
    let samples: Vec<(f64, u64, f64)> = stats["cpumask_weight"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| {
                    Some((s.get(0)?.as_f64()? / 1e6, s.get(1)?.as_u64()?, s.get(2)?.as_f64()?))
                })
                .collect()
        })
        .unwrap_or_default();
    let Some(mm) = samples.iter().map(|s| s.1).min() else { return Vec::new() };
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (t, m, w) in samples {
        if m != mm {
            continue;
        }
        if let Some(&(_, prev)) = out.last() {
            out.push((t, prev));
        }
        out.push((t, w));
    }
    // The last weight holds until the run ends.
    let end = stats["totals"]["simulated_ns"].as_f64().unwrap_or(0.0) / 1e6;
    if let Some(&(t, w)) = out.last() {
        if end > t {
            out.push((end, w));
        }
    }
    out
}

impl Figure for CpumaskWeight<'_> {
    fn size(&self) -> (u32, u32) {
        let rows = self.g.series.len().div_ceil(2) as u32;
        (1200, 70 + 190 * rows.max(1))
    }

    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult {
        area.fill(&WHITE).map_err(err)?;
        let (top, body) = area.split_vertically(50);
        top.draw(&Text::new(self.title.as_str(), (15, 12), ("sans-serif", 22).into_font()))
            .map_err(err)?;
        let rows = self.g.series.len().div_ceil(2).max(1);
        let panels = body.split_evenly((rows, 2));
        let lines: Vec<Vec<(f64, f64)>> = self
            .g
            .series
            .iter()
            .map(|s| {
                at_max(s, self.g.max_cores)
                    .and_then(|r| r.stats.as_ref())
                    .map(weight_steps)
                    .unwrap_or_default()
            })
            .collect();
        let tmax = lines.iter().flat_map(|l| l.iter().map(|p| p.0)).fold(0.001, f64::max);
        let wmax = self.g.max_cores as f64 + 0.5;
        for (i, s) in self.g.series.iter().enumerate() {
            let mut chart = ChartBuilder::on(&panels[i])
                .caption(&s.label, ("sans-serif", 15))
                .margin(8)
                .x_label_area_size(40)
                .y_label_area_size(55)
                .build_cartesian_2d(0f64..tmax, 0f64..wmax)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc("simulated time, ms")
                .y_desc("CPUs in mask")
                .x_labels(6)
                .y_labels(5)
                .y_label_formatter(&|y| format!("{y:.0}"))
                .axis_desc_style(("sans-serif", 13))
                .label_style(("sans-serif", 12))
                .light_line_style(BLACK.mix(0.05))
                .draw()
                .map_err(err)?;
            chart
                .draw_series(LineSeries::new(lines[i].clone(), colour(i).stroke_width(2)))
                .map_err(err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cdf_reaches_one_and_rises() {
        let pts = cdf_points(&json!([[5, 1], [960, 2], [1024, 1]]));
        assert_eq!(pts.first().map(|p| p.1), Some(0.0));
        assert_eq!(pts.last().map(|p| p.1), Some(1.0));
        assert!(pts.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert!(cdf_points(&json!([])).is_empty());
    }

    #[test]
    fn weight_steps_follow_the_first_mm() {
        let s = json!({"cpumask_weight": [[0, 1, 1], [1000000, 2, 1], [2000000, 1, 3]]});
        assert_eq!(weight_steps(&s), vec![(0.0, 1.0), (2.0, 1.0), (2.0, 3.0)]);
    }
}
