package scale

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxMetrics bounds a /metrics page (a mixd's is about 20 KB).
const maxMetrics = 4 << 20

// maxMetricLine bounds one line of it.
const maxMetricLine = 64 << 10

// SumMetric returns the sum over every label set of the metric family name in a Prometheus
// text exposition, and whether any sample of it was there.
func SumMetric(page []byte, name string) (float64, bool, error) {
	if len(page) > maxMetrics {
		return 0, false, fmt.Errorf("scale: metrics page of %d bytes, over %d", len(page), maxMetrics)
	}
	sc := bufio.NewScanner(bytes.NewReader(page))
	sc.Buffer(make([]byte, 4096), maxMetricLine)
	var sum float64
	found := false
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		if rest[0] == '{' {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				return 0, false, fmt.Errorf("scale: metric line %q: labels not closed", line)
			}
			rest = rest[end+1:]
		}
		f := strings.Fields(rest)
		if len(f) < 1 || len(f) > 2 {
			return 0, false, fmt.Errorf("scale: metric line %q: want a value and at most a timestamp", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, false, fmt.Errorf("scale: metric line %q: bad value", line)
		}
		sum += v
		if math.IsInf(sum, 0) {
			return 0, false, fmt.Errorf("scale: metric %s: the sum overflows", name)
		}
		found = true
	}
	if err := sc.Err(); err != nil {
		return 0, false, fmt.Errorf("scale: metrics: %w", err)
	}
	return sum, found, nil
}

// fetchMetric reads http://addr/metrics and sums the family name.
func fetchMetric(ctx context.Context, addr, name string) (float64, error) {
	// A daemon that cannot answer in this long is itself the finding: fail the run.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, fmt.Errorf("scale: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("scale: metrics of %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("scale: metrics of %s: %s", addr, resp.Status)
	}
	page, err := io.ReadAll(io.LimitReader(resp.Body, maxMetrics+1))
	if err != nil {
		return 0, fmt.Errorf("scale: metrics of %s: %w", addr, err)
	}
	v, _, err := SumMetric(page, name)
	return v, err
}
