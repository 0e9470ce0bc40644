package verificatum

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
)

// MaxProtInfoSize bounds protInfo.xml; Verificatum's files are a few KB per party.
const MaxProtInfoSize = 1 << 20

// Version is the Verificatum version whose formats this package implements.
const Version = "3.1.0"

// ProtInfo holds the fields of a Verificatum protocol info file that enter the proofs (§4.1).
type ProtInfo struct {
	Version   string // "3.1.0"
	SID       string // session identifier
	Name      string
	NoPart    int // number of parties
	Thres     int // decryption threshold
	StatDist  int // statistical distance exponent, bits
	PGroup    string
	KeyWidth  int
	VBitLenRO int // challenge bits in the random oracle model
	EBitLenRO int // batching bits in the random oracle model
	PRG       string
	ROHash    string
	Width     int
	MaxCiph   int
}

type xmlProtInfo struct {
	XMLName   xml.Name `xml:"protocol"`
	Version   string   `xml:"version"`
	SID       string   `xml:"sid"`
	Name      string   `xml:"name"`
	NoPart    string   `xml:"nopart"`
	Thres     string   `xml:"thres"`
	StatDist  string   `xml:"statdist"`
	PGroup    string   `xml:"pgroup"`
	KeyWidth  string   `xml:"keywidth"`
	VBitLenRO string   `xml:"vbitlenro"`
	EBitLenRO string   `xml:"ebitlenro"`
	PRG       string   `xml:"prg"`
	ROHash    string   `xml:"rohash"`
	Width     string   `xml:"width"`
	MaxCiph   string   `xml:"maxciph"`
}

// ErrUnsupported is wrapped when a protInfo.xml is well formed but names something this
// package does not implement (another group, hash or version).
var ErrUnsupported = errors.New("verificatum: unsupported parameter")

// ParseProtInfo parses and validates protInfo.xml. Only P-256, SHA-256 and version 3.1.0 are
// accepted.
func ParseProtInfo(b []byte) (*ProtInfo, error) {
	if len(b) > MaxProtInfoSize {
		return nil, fmt.Errorf("verificatum: protInfo.xml of %d bytes exceeds %d", len(b), MaxProtInfoSize)
	}
	var x xmlProtInfo
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	if err := d.Decode(&x); err != nil {
		return nil, fmt.Errorf("verificatum: protInfo.xml: %w", err)
	}
	p := &ProtInfo{
		Version: strings.TrimSpace(x.Version), SID: strings.TrimSpace(x.SID),
		Name: strings.TrimSpace(x.Name), PGroup: strings.TrimSpace(x.PGroup),
		PRG: strings.TrimSpace(x.PRG), ROHash: strings.TrimSpace(x.ROHash),
	}
	ints := []struct {
		name string
		s    string
		dst  *int
		min  int
		max  int
	}{
		{"nopart", x.NoPart, &p.NoPart, 1, 25},
		{"thres", x.Thres, &p.Thres, 1, 25},
		{"statdist", x.StatDist, &p.StatDist, 1, 512},
		{"keywidth", x.KeyWidth, &p.KeyWidth, 1, 1},
		{"vbitlenro", x.VBitLenRO, &p.VBitLenRO, 8, 512},
		{"ebitlenro", x.EBitLenRO, &p.EBitLenRO, 8, 512},
		{"width", x.Width, &p.Width, 1, 1},
		{"maxciph", x.MaxCiph, &p.MaxCiph, 0, 0},
	}
	for _, f := range ints {
		v, err := strconv.Atoi(strings.TrimSpace(f.s))
		if err != nil {
			return nil, fmt.Errorf("verificatum: protInfo.xml <%s>: %w", f.name, err)
		}
		if v < f.min || v > f.max {
			return nil, fmt.Errorf("%w: <%s> %d outside [%d, %d]", ErrUnsupported, f.name, v, f.min, f.max)
		}
		*f.dst = v
	}
	switch {
	case p.Version != Version:
		return nil, fmt.Errorf("%w: version %q", ErrUnsupported, p.Version)
	case p.SID == "":
		return nil, fmt.Errorf("verificatum: protInfo.xml: empty <sid>")
	case p.PGroup != group.Name:
		return nil, fmt.Errorf("%w: group %.40q", ErrUnsupported, p.PGroup)
	case p.PRG != "SHA-256":
		return nil, fmt.Errorf("%w: prg %q", ErrUnsupported, p.PRG)
	case p.ROHash != "SHA-256":
		return nil, fmt.Errorf("%w: rohash %q", ErrUnsupported, p.ROHash)
	case p.Thres > p.NoPart:
		return nil, fmt.Errorf("verificatum: protInfo.xml: threshold %d above %d parties", p.Thres, p.NoPart)
	}
	return p, nil
}
