// Package chart draws the reports' charts as SVG on the server with gonum.org/v1/plot: a
// latency percentile distribution on a log-scale percentile axis (the usual HdrHistogram
// view), series over time, and a curve against offered load with a marked point (the knee).
// Output is deterministic for equal input, so reports can be golden-file tested, and fit to
// be inlined in an HTML page (no XML prolog, no namespace URLs).
package chart

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"math"
	"regexp"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Size of every chart, in points (CSS scales the SVG to the page width).
const (
	Width  = 7 * vg.Inch
	Height = 3.6 * vg.Inch
)

// Series is one line of a chart.
type Series struct {
	Name   string
	X, Y   []float64
	Dashed bool
	Points bool // mark each point (sparse series such as capacity steps)
	NoLine bool // points only: values that do not form a curve (e.g. invalid steps)
}

// Mark is a vertical marker line with a label, e.g. the knee of a capacity curve.
type Mark struct {
	X     float64
	Label string
}

// palette is a fixed colour order (Okabe-Ito, readable by colour-blind readers).
var palette = []color.RGBA{
	{0x00, 0x72, 0xB2, 0xff}, // blue
	{0xD5, 0x5E, 0x00, 0xff}, // vermillion
	{0x00, 0x9E, 0x73, 0xff}, // bluish green
	{0xCC, 0x79, 0xA7, 0xff}, // reddish purple
	{0xE6, 0x9F, 0x00, 0xff}, // orange
	{0x56, 0xB4, 0xE9, 0xff}, // sky blue
	{0x00, 0x00, 0x00, 0xff}, // black
}

// Color returns the i-th palette colour as CSS hex, so HTML legends can match lines.
func Color(i int) string {
	c := palette[i%len(palette)]
	return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B)
}

// sans is the typeface of every label: Liberation Sans is embedded in gonum's font cache
// (for measuring) and metric-compatible with Arial/Helvetica, the fallbacks the SVG names.
var sans = font.Font{Typeface: "Liberation", Variant: "Sans"}

// PercentilePoint is one point of a latency distribution.
type PercentilePoint struct {
	Percentile float64 // 0 .. 100
	Value      float64 // latency, in the unit of the y axis
}

// Distribution is the percentile distribution of one metric.
type Distribution struct {
	Name   string
	Points []PercentilePoint
}

// Percentiles draws latency distributions against a log-scale percentile axis: x is
// 1/(1-p), so 90%, 99%, 99.9% ... are equally spaced and the tail gets the room it needs.
func Percentiles(title, yLabel string, ds []Distribution) ([]byte, error) {
	var ss []Series
	maxX := 10.0
	for _, d := range ds {
		s := Series{Name: d.Name}
		for _, p := range d.Points {
			if p.Percentile < 0 || p.Percentile >= 100 || math.IsNaN(p.Value) {
				continue // 100% maps to infinity; callers pass the max at the last finite rank
			}
			x := 1 / (1 - p.Percentile/100)
			s.X, s.Y = append(s.X, x), append(s.Y, p.Value)
			maxX = max(maxX, x)
		}
		if len(s.X) > 0 {
			ss = append(ss, s)
		}
	}
	if len(ss) == 0 {
		return nil, errors.New("percentile chart: no data")
	}
	decades := int(math.Ceil(math.Log10(maxX) - 1e-9))
	maxX = math.Pow(10, float64(decades))
	ticks := []plot.Tick{{Value: 1, Label: "0%"}, {Value: 2, Label: "50%"}}
	for k := 1; k <= decades; k++ {
		ticks = append(ticks, plot.Tick{Value: math.Pow(10, float64(k)), Label: nines(k)})
	}
	return draw1(spec{
		title: title, xLabel: "percentile", yLabel: yLabel, series: ss,
		xLog: true, xTicks: ticks, xMin: 1, xMax: maxX, yFromZero: true,
	})
}

// nines labels 1-10^-k as a percentage: 90%, 99%, 99.9%, ...
func nines(k int) string {
	switch k {
	case 1:
		return "90%"
	case 2:
		return "99%"
	}
	return "99." + strings.Repeat("9", k-2) + "%"
}

// Lines draws series against a linear x axis, with optional vertical marks.
func Lines(title, xLabel, yLabel string, ss []Series, marks []Mark) ([]byte, error) {
	var keep []Series
	for _, s := range ss {
		if len(s.X) != len(s.Y) {
			return nil, fmt.Errorf("chart %q: series %q has %d x and %d y values", title, s.Name, len(s.X), len(s.Y))
		}
		if len(s.X) > 0 {
			keep = append(keep, s)
		}
	}
	if len(keep) == 0 {
		return nil, fmt.Errorf("chart %q: no data", title)
	}
	return draw1(spec{title: title, xLabel: xLabel, yLabel: yLabel, series: keep, marks: marks, yFromZero: true})
}

type spec struct {
	title, xLabel, yLabel string
	series                []Series
	marks                 []Mark
	xLog                  bool
	xTicks                []plot.Tick
	xMin, xMax            float64
	yFromZero             bool
}

// draw1 renders one plot to SVG. gonum/plot panics on some degenerate input (e.g. a
// non-positive value on a log axis); inputs are filtered for that, and a panic that slips
// through still comes back as an error rather than killing the command.
func draw1(sp spec) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("chart %q: %v", sp.title, r)
		}
	}()
	p := plot.New()
	p.Title.Text = sp.title
	p.X.Label.Text, p.Y.Label.Text = sp.xLabel, sp.yLabel
	for _, st := range []*font.Font{&p.Title.TextStyle.Font, &p.X.Label.TextStyle.Font, &p.Y.Label.TextStyle.Font,
		&p.X.Tick.Label.Font, &p.Y.Tick.Label.Font, &p.Legend.TextStyle.Font} {
		size := st.Size
		*st = sans
		st.Size = size
	}
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.Padding = vg.Points(2)
	p.Add(plotter.NewGrid())

	ymin, ymax := math.Inf(1), math.Inf(-1)
	xmin, xmax := math.Inf(1), math.Inf(-1)
	for i, s := range sp.series {
		xys := make(plotter.XYs, 0, len(s.X))
		for j := range s.X {
			x, y := s.X[j], s.Y[j]
			if math.IsNaN(x) || math.IsNaN(y) || math.IsInf(x, 0) || math.IsInf(y, 0) || (sp.xLog && x <= 0) {
				continue
			}
			xys = append(xys, plotter.XY{X: x, Y: y})
			xmin, xmax = min(xmin, x), max(xmax, x)
			ymin, ymax = min(ymin, y), max(ymax, y)
		}
		if len(xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, fmt.Errorf("chart %q: series %q: %w", sp.title, s.Name, err)
		}
		l.Color = palette[i%len(palette)]
		l.Width = vg.Points(1.6)
		if s.Dashed {
			l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		}
		if !s.NoLine {
			p.Add(l)
		}
		if s.Points || s.NoLine {
			sc, err := plotter.NewScatter(xys)
			if err != nil {
				return nil, fmt.Errorf("chart %q: series %q: %w", sp.title, s.Name, err)
			}
			sc.Color = l.Color
			sc.Shape = draw.CircleGlyph{}
			sc.Radius = vg.Points(2.5)
			p.Add(sc)
		}
		if s.Name != "" && s.NoLine {
			p.Legend.Add(s.Name, &plotter.Scatter{XYs: xys[:1], GlyphStyle: draw.GlyphStyle{Color: l.Color, Radius: vg.Points(2.5), Shape: draw.CircleGlyph{}}})
		} else if s.Name != "" {
			p.Legend.Add(s.Name, l)
		}
	}
	if math.IsInf(ymin, 0) {
		return nil, fmt.Errorf("chart %q: no finite data", sp.title)
	}
	if sp.yFromZero {
		ymin = min(ymin, 0)
	}
	if ymax <= ymin {
		ymax = ymin + 1
	}
	ymax *= 1.08 // room above the highest point for the legend and mark labels
	p.Y.Min, p.Y.Max = ymin, ymax
	for _, m := range sp.marks { // a mark past the data still shows
		if !math.IsNaN(m.X) && !math.IsInf(m.X, 0) {
			xmin, xmax = min(xmin, m.X), max(xmax, m.X)
		}
	}
	if sp.xLog {
		p.X.Scale = plot.LogScale{}
		p.X.Min, p.X.Max = sp.xMin, sp.xMax
	} else if xmax > xmin {
		p.X.Min, p.X.Max = min(xmin, 0), xmax
	}
	if sp.xTicks != nil {
		p.X.Tick.Marker = plot.ConstantTicks(sp.xTicks)
	} else {
		p.X.Tick.Marker = trimmedTicks{}
	}
	p.Y.Tick.Marker = trimmedTicks{}
	for _, m := range sp.marks {
		if math.IsNaN(m.X) || math.IsInf(m.X, 0) {
			continue
		}
		l, err := plotter.NewLine(plotter.XYs{{X: m.X, Y: ymin}, {X: m.X, Y: ymax}})
		if err != nil {
			return nil, err
		}
		l.Color = color.RGBA{0x80, 0x80, 0x80, 0xff}
		l.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
		p.Add(l)
		if m.Label != "" {
			lb, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: m.X, Y: ymax - (ymax-ymin)*0.04}}, Labels: []string{" " + m.Label}})
			if err != nil {
				return nil, err
			}
			for i := range lb.TextStyle {
				lb.TextStyle[i].Font = sans
				lb.TextStyle[i].Font.Size = vg.Points(9)
				lb.TextStyle[i].Color = color.RGBA{0x40, 0x40, 0x40, 0xff}
			}
			p.Add(lb)
		}
	}
	c := vgsvg.New(Width, Height)
	p.Draw(draw.New(c))
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("chart %q: %w", sp.title, err)
	}
	return Inline(buf.Bytes()), nil
}

var (
	prolog     = regexp.MustCompile(`(?s)^<\?xml[^>]*\?>\s*(<!--.*?-->\s*)?`)
	namespaces = regexp.MustCompile(`\s+xmlns(:xlink)?="[^"]*"`)
	fixedSize  = regexp.MustCompile(`^<svg width="[^"]*" height="[^"]*"`)
)

// Inline prepares an SVG document for an HTML page: it drops the XML prolog and the
// namespace declarations (HTML parsers do not need them, and they read as URLs), makes the
// chart scale with the page, and gives text a font-family fallback list.
func Inline(svg []byte) []byte {
	s := prolog.ReplaceAllString(string(svg), "")
	s = namespaces.ReplaceAllString(s, "")
	s = fixedSize.ReplaceAllString(s, `<svg class="chart" role="img"`)
	s = strings.ReplaceAll(s, "font-family:Liberation Sans;", "font-family:'Liberation Sans',Arial,Helvetica,sans-serif;")
	return []byte(s)
}

// trimmedTicks are gonum's default ticks with labels written as short as their value allows
// ("5" and "2.5", not "5.00" and "2.50": the default pads every label to the same precision).
type trimmedTicks struct{}

func (trimmedTicks) Ticks(min, max float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(min, max)
	for i, t := range ticks {
		if strings.Contains(t.Label, ".") && !strings.ContainsAny(t.Label, "eE") {
			ticks[i].Label = strings.TrimSuffix(strings.TrimRight(t.Label, "0"), ".")
		}
	}
	return ticks
}
