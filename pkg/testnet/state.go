package testnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/panoramix-mixnet/panoramix/internal/freeport"
)

// StateFile is the file in Options.Dir that records a network's addresses, so that starting
// again on the same directory resumes the network: same ports, and with the keys, data and
// certificates already in the directory, the same network (`make run` twice).
const StateFile = "network.json"

// PortsPerNode is the stride of the port layout under Options.BasePort: each node takes its
// link, metrics, admin, IMAP, autoconfig and user SMTP (mailproxy) ports in this order; a mix
// uses only the first two, so that a node's ports do not depend on the others' roles.
const PortsPerNode = 6

// state is StateFile's content.
type state struct {
	Version        int         `json:"version"`
	Directory      string      `json:"directory"`
	DirectoryAdmin string      `json:"directory_admin"`
	Nodes          []nodeState `json:"nodes"`
}

type nodeState struct {
	Name       string `json:"name"`
	Role       string `json:"role"`
	Domain     string `json:"domain,omitempty"`
	Addr       string `json:"addr"`
	Metrics    string `json:"metrics"`
	Admin      string `json:"admin,omitempty"`
	IMAP       string `json:"imap,omitempty"`
	Autoconfig string `json:"autoconfig,omitempty"`
	UserSMTP   string `json:"user_smtp,omitempty"`
}

// loadState reads dir's StateFile; (nil, nil) when there is none.
func loadState(dir string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("testnet: %s: %w", filepath.Join(dir, StateFile), err)
	}
	if s.Version != 1 {
		return nil, fmt.Errorf("testnet: %s: version %d, want 1", filepath.Join(dir, StateFile), s.Version)
	}
	return &s, nil
}

func (s *state) save(dir string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, StateFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, StateFile))
}

// sameLayout reports whether s describes the nodes planned (names, roles, domains in order).
func (s *state) sameLayout(planned []*Node) bool {
	return slices.EqualFunc(s.Nodes, planned, func(a nodeState, b *Node) bool {
		return a.Name == b.Name && a.Role == b.Role && a.Domain == b.Domain
	})
}

// allocate gives the directory and the planned nodes their addresses: consecutive ports from
// base (the directory's two, then PortsPerNode per node), or free ports when base is 0.
func allocate(base int, planned []*Node) (*state, error) {
	n := 2 + PortsPerNode*len(planned)
	var ports []string
	if base == 0 {
		var err error
		if ports, err = freeport.Addrs(n); err != nil {
			return nil, err
		}
	} else {
		if base < 1024 || base+n-1 > 65535 {
			return nil, fmt.Errorf("testnet: base port %d: want 1024 to %d (the network takes %d ports)", base, 65535-n+1, n)
		}
		for i := range n {
			ports = append(ports, "127.0.0.1:"+strconv.Itoa(base+i))
		}
	}
	s := &state{Version: 1, Directory: ports[0], DirectoryAdmin: ports[1]}
	for i, nd := range planned {
		p := ports[2+PortsPerNode*i:]
		ns := nodeState{Name: nd.Name, Role: nd.Role, Domain: nd.Domain, Addr: p[0], Metrics: p[1]}
		if nd.Role == "provider" {
			ns.Admin, ns.IMAP, ns.Autoconfig, ns.UserSMTP = p[2], p[3], p[4], p[5]
		}
		s.Nodes = append(s.Nodes, ns)
	}
	return s, nil
}
