//! The dashboard's charts as server-rendered SVG: this module computes the
//! geometry (coordinates as short strings, labels, CSS classes) and the
//! templates draw it. No script and no `style` attribute (the CSP allows
//! neither): colours come from classes in `static/app.css`, so light and
//! dark schemes follow `prefers-color-scheme`; every series also differs
//! in dash pattern and marker, and every cell carries its number as text,
//! so colour is never the only carrier of meaning. Why templates rather
//! than a plotting crate: docs/dependencies.md.

/// The width of every chart's `viewBox`; the page scales it to the
/// column (a phone at 390 px shows it at about 0.85).
pub const WIDTH: f64 = 420.0;

/// A number for an SVG attribute: at most one decimal.
fn n(v: f64) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

/// A label cut to `max` characters (with an ellipsis); the full text goes
/// in the element's `<title>` and the table.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// An axis tick: where, and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    pub at: String,
    /// Where its label's baseline goes (across the axis from `at`).
    pub text_at: String,
    pub label: String,
}

/// One point of a series, with what it says to a pointer's tooltip.
#[derive(Debug, Clone, PartialEq)]
pub struct Dot {
    pub x: String,
    pub y: String,
    /// The corner of a square marker centred on the point.
    pub sx: String,
    pub sy: String,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    /// `met` or `shown`: colour, dash pattern and marker shape.
    pub class: &'static str,
    /// Every point, in order.
    pub points: String,
    /// The `points` of each `<polyline>`: one per run of weeks with a
    /// value (a week without one breaks the line).
    pub segments: Vec<String>,
    pub dots: Vec<Dot>,
}

/// A line chart of weekly values.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    pub width: String,
    pub height: String,
    /// The plot area's left, right, top and bottom edges.
    pub left: String,
    pub right: String,
    pub top: String,
    pub bottom: String,
    /// Where the y-axis labels end, and the x-axis labels' baseline.
    pub y_label_x: String,
    pub x_label_y: String,
    pub x_ticks: Vec<Tick>,
    pub y_ticks: Vec<Tick>,
    pub series: Vec<Series>,
    /// Weeks with no value at all (suppressed): a dash on the baseline,
    /// its tooltip saying so.
    pub gaps: Vec<Tick>,
}

/// A rounded axis maximum at or above `max` (1, 2 or 5 times a power of
/// ten), so the ticks are round numbers.
fn nice_max(max: i64) -> i64 {
    let mut step = 1;
    loop {
        for m in [1, 2, 5] {
            if m * step >= max {
                return (m * step).max(1);
            }
        }
        step *= 10;
    }
}

/// Two series over the same weeks: `(week label, met, demonstrated)`.
pub fn line_chart(weeks: &[(String, i64, i64)]) -> LineChart {
    let weeks: Vec<(String, Option<i64>, Option<i64>)> = weeks
        .iter()
        .map(|(w, a, b)| (w.clone(), Some(*a), Some(*b)))
        .collect();
    line_chart_gaps(&weeks)
}

/// Two series over the same weeks, where a week may have no value (a
/// suppressed cell): the line breaks there and the week has no marker, so
/// a suppressed week is never drawn as a number.
pub fn line_chart_gaps(weeks: &[(String, Option<i64>, Option<i64>)]) -> LineChart {
    let (left, right, top, bottom) = (44.0, WIDTH - 12.0, 12.0, 170.0);
    let height = bottom + 34.0;
    let peak = weeks
        .iter()
        .map(|(_, a, b)| a.unwrap_or(0).max(b.unwrap_or(0)))
        .max()
        .unwrap_or(0);
    let y_max = nice_max(peak);
    let step = if weeks.len() > 1 {
        (right - left) / (weeks.len() - 1) as f64
    } else {
        0.0
    };
    let x = |i: usize| left + step * i as f64;
    let y = |v: i64| bottom - (bottom - top) * (v.max(0) as f64 / y_max as f64);
    type Week = (String, Option<i64>, Option<i64>);
    let series = |name: &str, class, pick: fn(&Week) -> Option<i64>| {
        let mut dots = Vec::new();
        let mut segments: Vec<Vec<String>> = vec![Vec::new()];
        for (i, w) in weeks.iter().enumerate() {
            let Some(v) = pick(w) else {
                if segments.last().is_some_and(|s| !s.is_empty()) {
                    segments.push(Vec::new());
                }
                continue;
            };
            let d = Dot {
                x: n(x(i)),
                y: n(y(v)),
                sx: n(x(i) - 3.5),
                sy: n(y(v) - 3.5),
                label: format!("{}: {v} {name}", w.0),
            };
            if let Some(s) = segments.last_mut() {
                s.push(format!("{},{}", d.x, d.y));
            }
            dots.push(d);
        }
        let segments: Vec<String> = segments
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(|s| s.join(" "))
            .collect();
        Series {
            name: name.to_string(),
            class,
            points: dots
                .iter()
                .map(|d| format!("{},{}", d.x, d.y))
                .collect::<Vec<_>>()
                .join(" "),
            segments,
            dots,
        }
    };
    // Every other week is labelled, so the labels fit a phone.
    let x_ticks = weeks
        .iter()
        .enumerate()
        .filter(|(i, _)| (weeks.len() - 1 - i).is_multiple_of(2))
        .map(|(i, w)| Tick {
            at: n(x(i)),
            text_at: n(bottom + 18.0),
            label: w.0.rsplit('-').next().unwrap_or(&w.0).to_string(),
        })
        .collect();
    let gaps = weeks
        .iter()
        .enumerate()
        .filter(|(_, w)| w.1.is_none() && w.2.is_none())
        .map(|(i, w)| Tick {
            at: n(x(i)),
            text_at: n(bottom - 4.0),
            label: format!("{}: suppressed", w.0),
        })
        .collect();
    let y_ticks = [0, y_max / 2, y_max]
        .iter()
        .map(|v| Tick {
            at: n(y(*v)),
            text_at: n(y(*v) + 4.0),
            label: v.to_string(),
        })
        .collect();
    LineChart {
        width: n(WIDTH),
        height: n(height),
        left: n(left),
        right: n(right),
        top: n(top),
        bottom: n(bottom),
        y_label_x: n(left - 6.0),
        x_label_y: n(bottom + 18.0),
        x_ticks,
        y_ticks,
        series: vec![
            series("met", "met", |w| w.1),
            series("demonstrated", "shown", |w| w.2),
        ],
        gaps,
    }
}

/// One bar of a horizontal bar chart.
#[derive(Debug, Clone, PartialEq)]
pub struct BarRow {
    pub y: String,
    pub text_y: String,
    pub label: String,
    pub full_label: String,
    pub width: String,
    pub value: String,
    pub value_x: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    pub width: String,
    pub height: String,
    /// Where the bars start.
    pub origin: String,
    pub rows: Vec<BarRow>,
}

/// Horizontal bars: `(label, magnitude, value as text)`, longest bar the
/// largest magnitude.
pub fn bar_chart(rows: &[(String, f64, String)]) -> BarChart {
    bar_chart_to(rows, 0.0)
}

/// Horizontal bars where a bar of magnitude `full` (or the largest, if
/// larger) spans the chart: shares drawn against 100 %, not against the
/// largest share.
pub fn bar_chart_to(rows: &[(String, f64, String)], full: f64) -> BarChart {
    let (label_w, value_w, row_h) = (178.0, 58.0, 24.0);
    let span = WIDTH - label_w - value_w;
    let peak = rows.iter().map(|r| r.1).fold(full, f64::max);
    let rows: Vec<BarRow> = rows
        .iter()
        .enumerate()
        .map(|(i, (label, v, text))| {
            let w = if peak > 0.0 {
                (span * v / peak).max(1.0)
            } else {
                1.0
            };
            let top = 4.0 + row_h * i as f64;
            BarRow {
                y: n(top + 3.0),
                text_y: n(top + 16.0),
                label: cut(label, 27),
                full_label: label.clone(),
                width: n(w),
                value: text.clone(),
                value_x: n(label_w + w + 6.0),
            }
        })
        .collect();
    BarChart {
        width: n(WIDTH),
        height: n(8.0 + row_h * rows.len().max(1) as f64),
        origin: n(label_w),
        rows,
    }
}

/// One heat-map cell as the caller knows it.
#[derive(Debug, Clone, PartialEq)]
pub enum Coverage {
    /// `covered` of `of` concepts.
    Share { covered: usize, of: usize },
    /// No figure, with the reason.
    Suppressed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeatCell {
    pub x: String,
    pub text_x: String,
    /// `q0` to `q4` by share, or `sup` (hatched).
    pub class: &'static str,
    pub text: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeatRow {
    pub y: String,
    pub text_y: String,
    pub label: String,
    pub full_label: String,
    pub cells: Vec<HeatCell>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeatColumn {
    pub x: String,
    pub y: String,
    pub label: String,
    pub full_label: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeatMap {
    pub width: String,
    pub height: String,
    pub cell_w: String,
    pub cell_h: String,
    pub columns: Vec<HeatColumn>,
    pub rows: Vec<HeatRow>,
}

/// The share as a percentage, and its colour step.
pub fn share(covered: usize, of: usize) -> (u32, &'static str) {
    let pct = if of == 0 {
        0
    } else {
        ((covered as f64 / of as f64) * 100.0).round() as u32
    };
    let class = match pct {
        0 => "q0",
        1..=24 => "q1",
        25..=49 => "q2",
        50..=74 => "q3",
        _ => "q4",
    };
    (pct, class)
}

/// Rows (domains) by columns (teams); `cells[row][column]`.
pub fn heat_map(rows: &[String], columns: &[String], cells: &[Vec<Coverage>]) -> HeatMap {
    let (label_w, head_h, cell_h) = (132.0, 64.0, 22.0);
    let cols = columns.len().max(1) as f64;
    let cell_w = ((WIDTH - label_w) / cols).min(72.0);
    let columns_out = columns
        .iter()
        .enumerate()
        .map(|(j, name)| HeatColumn {
            x: n(label_w + cell_w * (j as f64 + 0.5)),
            y: n(head_h - 6.0),
            label: cut(name, 12),
            full_label: name.clone(),
        })
        .collect();
    let rows_out = rows
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let top = head_h + cell_h * i as f64;
            let cells = columns
                .iter()
                .enumerate()
                .map(|(j, team)| {
                    let x = label_w + cell_w * j as f64;
                    let (class, text, title) = match cells.get(i).and_then(|r| r.get(j)) {
                        Some(Coverage::Share { covered, of }) => {
                            let (pct, class) = share(*covered, *of);
                            (
                                class,
                                format!("{pct}%"),
                                format!("{team}, {name}: {covered} of {of} concepts ({pct} %)"),
                            )
                        }
                        Some(Coverage::Suppressed(why)) => {
                            ("sup", "–".to_string(), format!("{team}, {name}: {why}"))
                        }
                        None => ("sup", "–".to_string(), format!("{team}, {name}: no figure")),
                    };
                    HeatCell {
                        x: n(x + 1.0),
                        text_x: n(x + cell_w / 2.0),
                        class,
                        text,
                        title,
                    }
                })
                .collect();
            HeatRow {
                y: n(top + 1.0),
                text_y: n(top + 15.0),
                label: cut(name, 20),
                full_label: name.clone(),
                cells,
            }
        })
        .collect();
    HeatMap {
        width: n(label_w + cell_w * cols),
        height: n(head_h + cell_h * rows.len().max(1) as f64 + 2.0),
        cell_w: n(cell_w - 2.0),
        cell_h: n(cell_h - 2.0),
        columns: columns_out,
        rows: rows_out,
    }
}

/// A forgetting curve: one engineer's predicted recall of one concept
/// from its last review on, with today and the due date marked.
#[derive(Debug, Clone, PartialEq)]
pub struct RecallCurve {
    pub width: String,
    pub height: String,
    pub left: String,
    pub right: String,
    pub top: String,
    pub bottom: String,
    pub y_label_x: String,
    /// The `points` of the curve's `<polyline>`.
    pub points: String,
    /// The target recall (the due threshold) as a horizontal line.
    pub target_y: String,
    pub y_ticks: Vec<Tick>,
    /// Today and the due date: where, and what they say.
    pub now: Marker,
    pub due: Marker,
}

/// A vertical mark on a curve.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub x: String,
    pub y: String,
    pub label_x: String,
    /// `start` or `end`, so the label stays inside the chart.
    pub anchor: &'static str,
    pub label: String,
}

/// Samples along a curve.
const CURVE_POINTS: usize = 48;

/// The curve `recall(days after the last review)` from 0 to a span that
/// shows both today (`now_days`) and the due date (`due_days`), with a
/// quarter more after the later of the two; `target` is the recall the
/// due date aims at (drawn as a line).
pub fn recall_curve(
    recall: impl Fn(f64) -> f64,
    now_days: f64,
    due_days: f64,
    target: f64,
    now_label: &str,
    due_label: &str,
) -> RecallCurve {
    let (left, right, top, bottom) = (40.0, WIDTH - 12.0, 10.0, 120.0);
    let span = (now_days.max(due_days).max(1.0) * 1.25).max(7.0);
    let x = |d: f64| left + (right - left) * (d / span).clamp(0.0, 1.0);
    let y = |r: f64| bottom - (bottom - top) * r.clamp(0.0, 1.0);
    let points = (0..=CURVE_POINTS)
        .map(|i| {
            let d = span * i as f64 / CURVE_POINTS as f64;
            format!("{},{}", n(x(d)), n(y(recall(d))))
        })
        .collect::<Vec<_>>()
        .join(" ");
    let marker = |d: f64, label: &str| {
        let at = x(d);
        let end = at > (left + right) / 2.0;
        Marker {
            x: n(at),
            y: n(y(recall(d))),
            label_x: n(if end { at - 4.0 } else { at + 4.0 }),
            anchor: if end { "end" } else { "start" },
            label: label.to_string(),
        }
    };
    let y_ticks = [0.0, 0.5, 1.0]
        .iter()
        .map(|v| Tick {
            at: n(y(*v)),
            text_at: n(y(*v) + 4.0),
            label: format!("{:.0}%", v * 100.0),
        })
        .collect();
    RecallCurve {
        width: n(WIDTH),
        height: n(bottom + 8.0),
        left: n(left),
        right: n(right),
        top: n(top),
        bottom: n(bottom),
        y_label_x: n(left - 6.0),
        points,
        target_y: n(y(target)),
        y_ticks,
        now: marker(now_days, now_label),
        due: marker(due_days, due_label),
    }
}

/// One concept of a concept graph: a box, its (cut) title, and the page
/// it links to (none for a concept the org no longer has).
#[derive(Debug, Clone, PartialEq)]
pub struct GraphNode {
    pub x: String,
    pub y: String,
    pub w: String,
    pub h: String,
    pub text_x: String,
    pub text_y: String,
    pub label: String,
    pub full_label: String,
    /// What it is to the concept in the middle, said to a screen reader.
    pub role: &'static str,
    /// `centre`, `needs` (a prerequisite) or `rel` (related).
    pub class: &'static str,
    pub href: Option<String>,
}

/// A line from one box to another; `needs` ends in an arrow into the
/// concept, `rel` is dashed.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphEdge {
    pub x1: String,
    pub y1: String,
    pub x2: String,
    pub y2: String,
    pub class: &'static str,
}

/// A concept with its prerequisites on the left and its related concepts
/// on the right.
#[derive(Debug, Clone, PartialEq)]
pub struct ConceptGraph {
    pub width: String,
    pub height: String,
    pub left_head_x: String,
    pub right_head_x: String,
    /// A side with no concept says "none" at this height.
    pub needs_empty: bool,
    pub related_empty: bool,
    pub none_y: String,
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
}

/// Boxes drawn per side; the page lists the rest.
pub const GRAPH_SIDE: usize = 8;

/// A neighbour of the concept: its title and its page, if it has one.
pub type Neighbour = (String, Option<String>);

/// The concept `title` between its prerequisites (left, arrows into it)
/// and its related concepts (right, dashed), at most [`GRAPH_SIDE`] each.
pub fn concept_graph(title: &str, needs: &[Neighbour], related: &[Neighbour]) -> ConceptGraph {
    let (col_w, gap, box_h, pitch, head) = (124.0, 24.0, 28.0, 36.0, 22.0);
    let needs = &needs[..needs.len().min(GRAPH_SIDE)];
    let related = &related[..related.len().min(GRAPH_SIDE)];
    let rows = needs.len().max(related.len()).max(1) as f64;
    let body = pitch * rows;
    let height = head + body + 4.0;
    let centre_x = col_w + gap;
    let right_x = centre_x + col_w + gap;
    let centre_y = head + body / 2.0 - box_h / 2.0;
    let node = |x: f64, y: f64, label: &str, role, class, href: Option<String>| GraphNode {
        x: n(x),
        y: n(y),
        w: n(col_w),
        h: n(box_h),
        text_x: n(x + col_w / 2.0),
        text_y: n(y + box_h / 2.0 + 4.0),
        label: cut(label, 18),
        full_label: label.to_string(),
        role,
        class,
        href,
    };
    // A side's boxes, centred on the concept.
    let side_y = |i: usize, count: usize| {
        let block = pitch * count as f64;
        head + (body - block) / 2.0 + pitch * i as f64 + (pitch - box_h) / 2.0
    };
    let mut nodes = vec![node(
        centre_x,
        centre_y,
        title,
        "this concept",
        "centre",
        None,
    )];
    let mut edges = Vec::new();
    let mid = centre_y + box_h / 2.0;
    for (i, (t, href)) in needs.iter().enumerate() {
        let y = side_y(i, needs.len());
        nodes.push(node(0.0, y, t, "prerequisite", "needs", href.clone()));
        edges.push(GraphEdge {
            x1: n(col_w),
            y1: n(y + box_h / 2.0),
            x2: n(centre_x - 3.0),
            y2: n(mid),
            class: "needs",
        });
    }
    for (i, (t, href)) in related.iter().enumerate() {
        let y = side_y(i, related.len());
        nodes.push(node(right_x, y, t, "related", "rel", href.clone()));
        edges.push(GraphEdge {
            x1: n(centre_x + col_w),
            y1: n(mid),
            x2: n(right_x),
            y2: n(y + box_h / 2.0),
            class: "rel",
        });
    }
    ConceptGraph {
        width: n(right_x + col_w),
        height: n(height),
        left_head_x: n(col_w / 2.0),
        right_head_x: n(right_x + col_w / 2.0),
        needs_empty: needs.is_empty(),
        related_empty: related.is_empty(),
        none_y: n(mid + 4.0),
        nodes,
        edges,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_chart_scales_to_a_round_maximum_and_labels_every_point() {
        let weeks: Vec<(String, i64, i64)> = (1..=4)
            .map(|i| (format!("2026-W0{i}"), i * 10, i * 4))
            .collect();
        let c = line_chart(&weeks);
        assert_eq!(c.y_ticks.last().map(|t| t.label.as_str()), Some("50"));
        let met = &c.series[0];
        assert_eq!(met.dots.len(), 4);
        assert_eq!(met.dots[3].label, "2026-W04: 40 met");
        // The first point at the left edge and the value 10 of 50 at a
        // fifth of the height from the bottom (170 - 158 * 0.2).
        assert_eq!(met.points.split(' ').next(), Some("44,138.4"));
        assert_eq!(c.x_ticks.last().map(|t| t.label.as_str()), Some("W04"));
        // Nothing at all still draws (no division by zero).
        let flat = line_chart(&[("2026-W01".into(), 0, 0)]);
        assert_eq!(flat.series[0].points, "44,170");
    }

    #[test]
    fn bars_are_proportional_and_labels_are_cut_with_the_full_text_kept() {
        let long = "a concept title that is longer than the space it has".to_string();
        let c = bar_chart(&[
            (long.clone(), 20.0, "20".into()),
            ("short".into(), 5.0, "5".into()),
        ]);
        assert_eq!(c.rows[0].width, "184");
        assert_eq!(c.rows[1].width, "46");
        assert!(c.rows[0].label.ends_with('…') && c.rows[0].label.chars().count() == 27);
        assert_eq!(c.rows[0].full_label, long);
    }

    #[test]
    fn heat_cells_carry_their_number_and_suppressed_ones_their_reason() {
        let m = heat_map(
            &["Rust".into()],
            &["core".into(), "tiny".into()],
            &[vec![
                Coverage::Share { covered: 3, of: 4 },
                Coverage::Suppressed("fewer than 5 engineers".into()),
            ]],
        );
        let cells = &m.rows[0].cells;
        assert_eq!((cells[0].class, cells[0].text.as_str()), ("q4", "75%"));
        assert_eq!(cells[1].class, "sup");
        assert!(cells[1].title.contains("fewer than 5 engineers"));
        assert_eq!(share(0, 0), (0, "q0"));
        assert_eq!(share(1, 4), (25, "q2"));
    }

    #[test]
    fn the_recall_curve_falls_from_full_and_marks_today_and_the_due_date() {
        // A made-up curve halving every 10 days; due when it reaches 0.9.
        let curve = |d: f64| 0.5_f64.powf(d / 10.0);
        let c = recall_curve(curve, 20.0, 1.5, 0.9, "today", "due");
        let pts: Vec<&str> = c.points.split(' ').collect();
        assert_eq!(pts.len(), CURVE_POINTS + 1);
        // Full recall at the left edge, top of the plot.
        assert_eq!(pts[0], "40,10");
        // Today is the later mark: at 20 of a 25-day span, labelled
        // leftwards so it stays inside.
        assert_eq!(c.now.x, n(40.0 + (408.0 - 40.0) * 0.8));
        assert_eq!(c.now.anchor, "end");
        assert_eq!(c.now.y, n(120.0 - 110.0 * 0.25));
        assert_eq!(c.due.anchor, "start");
        assert_eq!(c.target_y, n(120.0 - 110.0 * 0.9));
        assert_eq!(c.y_ticks[2].label, "100%");
        // A fresh card still spans a week.
        let fresh = recall_curve(curve, 0.0, 1.0, 0.9, "today", "due");
        assert_eq!(fresh.due.x, n(40.0 + 368.0 / 7.0));
    }

    #[test]
    fn shares_are_drawn_against_the_whole() {
        let rows = vec![("a".to_string(), 5.0, "5 %".to_string())];
        let half = bar_chart_to(&rows, 100.0);
        let full = bar_chart(&rows);
        let w = |c: &BarChart| c.rows[0].width.parse::<f64>().expect("width");
        assert!((w(&full) / w(&half) - 20.0).abs() < 0.5, "{half:?}");
    }

    #[test]
    fn a_suppressed_week_breaks_the_line_and_has_no_marker() {
        let weeks = vec![
            ("2026-W01".to_string(), Some(10), Some(5)),
            ("2026-W02".to_string(), None, None),
            ("2026-W03".to_string(), Some(20), Some(8)),
            ("2026-W04".to_string(), Some(12), None),
        ];
        let c = line_chart_gaps(&weeks);
        let met = &c.series[0];
        assert_eq!(met.segments.len(), 2, "{:?}", met.segments);
        assert_eq!(met.dots.len(), 3);
        assert!(met.dots.iter().all(|d| !d.label.contains("W02")));
        assert_eq!(c.gaps.len(), 1, "only W02 has neither value");
        assert_eq!(c.gaps[0].label, "2026-W02: suppressed");
        let shown = &c.series[1];
        assert_eq!(shown.segments.len(), 2);
        assert_eq!(shown.segments[1].split(' ').count(), 1, "W03 alone");
        assert_eq!(c.y_ticks.last().map(|t| t.label.as_str()), Some("20"));
        assert_eq!(
            line_chart_gaps(&[("2026-W01".into(), None, None)]).series[0]
                .segments
                .len(),
            0
        );
    }

    #[test]
    fn the_concept_graph_puts_prerequisites_left_and_related_right_with_links() {
        let needs = vec![
            (
                "Ownership and borrowing in Rust".to_string(),
                Some("/o/a/concepts/rust-ownership".to_string()),
            ),
            ("Gone".to_string(), None),
        ];
        let related = vec![(
            "Traits".to_string(),
            Some("/o/a/concepts/rust-traits".to_string()),
        )];
        let g = concept_graph("Lifetimes", &needs, &related);
        assert_eq!(g.nodes.len(), 4);
        assert_eq!(g.edges.len(), 3);
        let centre = &g.nodes[0];
        assert_eq!((centre.class, centre.href.as_deref()), ("centre", None));
        let first = &g.nodes[1];
        assert_eq!((first.class, first.x.as_str()), ("needs", "0"));
        assert_eq!(first.label.chars().count(), 18, "cut, full text kept");
        assert_eq!(first.full_label, "Ownership and borrowing in Rust");
        assert!(g.nodes[2].href.is_none());
        let rel = &g.nodes[3];
        assert_eq!((rel.class, rel.x.as_str()), ("rel", "296"));
        assert_eq!(g.width, "420");
        // Arrows end at the concept's box, dashed lines start at it.
        assert!(
            g.edges
                .iter()
                .filter(|e| e.class == "needs")
                .all(|e| e.x2 == "145")
        );
        assert!(
            g.edges
                .iter()
                .filter(|e| e.class == "rel")
                .all(|e| e.x1 == "272")
        );
        let many: Vec<Neighbour> = (0..20).map(|i| (format!("c{i}"), None)).collect();
        assert_eq!(concept_graph("x", &many, &[]).nodes.len(), 1 + GRAPH_SIDE);
    }
}
