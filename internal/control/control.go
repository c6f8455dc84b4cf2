package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

const (
	// CommandSnapshot asks for a Snapshot.
	CommandSnapshot = "snapshot"
	// CommandInitiate asks the IKE engine to establish the connection
	// named in Request.Name and waits for the outcome.
	CommandInitiate = "initiate"
	// CommandTerminate asks the IKE engine to delete the connection's
	// IKE SAs (and their Child SAs) and waits for the peer's answer.
	CommandTerminate = "terminate"
	// CommandRekey asks the IKE engine to rekey now: Request.Name is a
	// connection (its IKE SAs are rekeyed, the Child SAs move along) or
	// "CONNECTION/CHILD" (that child's Child SAs are rekeyed), and the
	// answer comes once the CREATE_CHILD_SA exchanges are done.
	CommandRekey = "rekey"
	// CommandReload asks the daemon to re-read its configuration file
	// (Request.Name: its path, which must be the file the daemon runs;
	// empty: that file) and apply the difference; the answer says what
	// changed, or why nothing did.
	CommandReload = "reload"

	maxRequest = 4 << 10 // a request is one short JSON line
	ioTimeout  = 5 * time.Second
	// ActionTimeout bounds an initiate or terminate: IKE's retransmission
	// schedule gives up within it.
	ActionTimeout = 30 * time.Second
)

// Request is what a client sends.
type Request struct {
	Command string `json:"command"`
	// Name is the connection an action applies to.
	Name string `json:"name,omitempty"`
}

// Action carries out a command on a named object (a connection) and says
// what it did.
type Action func(ctx context.Context, name string) (string, error)

// Response is what the server answers: an error or a snapshot.
type Response struct {
	Error    string    `json:"error,omitempty"`
	Snapshot *Snapshot `json:"snapshot,omitempty"`
	// Result is an action's one-line outcome.
	Result string `json:"result,omitempty"`
}

// Access says who besides root (and the daemon's own user) may use the
// socket. Members of ReadGID may read (snapshot: `xdpsec show`); members
// of AdminGID may also change state (initiate, terminate, rekey, and any
// other command). 0 means no such group, so the zero value is root only.
type Access struct {
	ReadGID, AdminGID uint32
}

// permission is what a peer may do.
type permission uint8

const (
	permNone  permission = iota
	permRead             // read-only commands
	permAdmin            // everything
)

// readOnly reports whether command only reads. Every other command,
// including ones added later (a reload), changes state.
func readOnly(command string) bool { return command == CommandSnapshot }

// peer is what the kernel says about the process at the other end
// (SO_PEERCRED, SO_PEERGROUPS), as of its connect.
type peer struct {
	uid, gid uint32
	groups   []uint32
}

func (a Access) permit(p peer, self uint32) permission {
	if p.uid == 0 || p.uid == self {
		return permAdmin
	}
	in := func(g uint32) bool {
		if g == 0 {
			return false
		}
		if p.gid == g {
			return true
		}
		for _, x := range p.groups {
			if x == g {
				return true
			}
		}
		return false
	}
	switch {
	case in(a.AdminGID):
		return permAdmin
	case in(a.ReadGID):
		return permRead
	}
	return permNone
}

// socketGID is the group the socket file belongs to: the read group, or
// the admin group when only that is set. An admin-group member outside the
// read group needs both (the file has one group).
func (a Access) socketGID() uint32 {
	if a.ReadGID != 0 {
		return a.ReadGID
	}
	return a.AdminGID
}

// Server answers control requests on a Unix socket.
type Server struct {
	ln       net.Listener
	path     string
	access   Access
	self     uint32
	snapshot func() *Snapshot
	log      *slog.Logger
	wg       sync.WaitGroup
	once     sync.Once

	mu      sync.Mutex
	actions map[string]Action
	ctx     context.Context
	cancel  context.CancelFunc
}

// InUse reports whether a daemon answers on the socket at path.
func InUse(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Listen creates the socket at path and serves requests with snapshot until
// Close, to the peers access allows. The directory is created if missing
// and must belong to the daemon's user and be writable by no one else, so
// no other user can put a socket of theirs (or a link) in its place. The
// socket is created under umask 0177 (mode 0600 from its first moment),
// then given to access's group with mode 0660 if there is one. A stale
// socket left by a daemon that died is replaced; one that still answers
// means another daemon owns it.
func Listen(path string, access Access, snapshot func() *Snapshot, log *slog.Logger) (*Server, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(path); err == nil {
		if InUse(path) {
			return nil, fmt.Errorf("control: %s is in use by a running daemon", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("control: remove stale socket: %w", err)
		}
	}
	// bind(2) creates the file with the umask applied: make it 0600 from
	// the start. The umask is the process's; other goroutines creating
	// files meanwhile only get stricter modes.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	mode := os.FileMode(0o600)
	if gid := access.socketGID(); gid != 0 {
		if err := os.Lchown(path, -1, int(gid)); err != nil {
			ln.Close()
			// Only root may give a file to a group it is not in.
			return nil, fmt.Errorf("control: give the socket to group %d: %w (a daemon that is not root can give it only to a group its user is in: usermod -aG GROUP USER)", gid, err)
		}
		mode = 0o660
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control: %w", err)
	}
	s := &Server{ln: ln, path: path, access: access, self: uint32(os.Geteuid()), snapshot: snapshot, log: log, actions: map[string]Action{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Handle registers f for command; requests for it carry a Name.
func (s *Server) Handle(command string, f Action) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.actions[command] = f
}

func (s *Server) action(command string) Action {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.actions[command]
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Warn("control: accept", "err", err)
			}
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c)
		}()
	}
}

func (s *Server) handle(c net.Conn) {
	defer c.Close()
	p, err := peerOf(c)
	if err != nil {
		s.log.Warn("control: peer credentials", "err", err)
		return
	}
	c.SetDeadline(time.Now().Add(ioTimeout))
	r := bufio.NewReader(io.LimitReader(c, maxRequest))
	line, err := r.ReadBytes('\n')
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		return
	}
	var resp Response
	if req, err := decodeRequest(line); err != nil {
		resp.Error = err.Error()
	} else if msg := s.refuse(p, req.Command); msg != "" {
		// Answered (the request is bounded) so the client sees why.
		s.log.Debug("control: refused", "command", req.Command, "uid", p.uid, "gid", p.gid)
		resp.Error = msg
	} else {
		switch f := s.action(req.Command); {
		case req.Command == CommandSnapshot:
			resp.Snapshot = s.snapshot()
		case f != nil:
			// Actions wait on the network: give them their own, longer
			// deadline, and end them when the server closes.
			c.SetDeadline(time.Now().Add(ActionTimeout + ioTimeout))
			ctx, cancel := context.WithTimeout(s.ctx, ActionTimeout)
			res, err := f(ctx, req.Name)
			cancel()
			resp.Result = res
			if err != nil {
				resp.Error = err.Error()
			}
		default:
			resp.Error = fmt.Sprintf("unknown command %q", req.Command)
		}
	}
	if err := json.NewEncoder(c).Encode(&resp); err != nil {
		s.log.Debug("control: write", "err", err)
	}
}

// refuse says why p may not run command, or "" if it may.
func (s *Server) refuse(p peer, command string) string {
	switch s.access.permit(p, s.self) {
	case permAdmin:
		return ""
	case permRead:
		if readOnly(command) {
			return ""
		}
		return fmt.Sprintf("permission denied: %s changes state and needs root or the control_admin_group (uid %d)", command, p.uid)
	}
	return fmt.Sprintf("permission denied: uid %d is not root and not in the control_group or control_admin_group", p.uid)
}

// checkDir refuses a socket directory that another user owns or may write
// to: they could replace the socket between our start and a client's
// connect, or have put a link there.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok {
		return fmt.Errorf("control: %s is not a directory", dir)
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return fmt.Errorf("control: the socket's directory %s belongs to uid %d, not the daemon's (%d): give the socket a directory of its own (default %s)", dir, st.Uid, uid, "/run/xdpsec")
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("control: the socket's directory %s is writable by group or others (mode %04o): give the socket a directory of its own (default /run/xdpsec) or chmod go-w %s", dir, fi.Mode().Perm(), dir)
	}
	return nil
}

// decodeRequest reads one request line.
func decodeRequest(line []byte) (Request, error) {
	var req Request
	if len(line) > maxRequest {
		return req, errors.New("bad request: too long")
	}
	if err := json.Unmarshal(line, &req); err != nil {
		return req, fmt.Errorf("bad request: %w", err)
	}
	return req, nil
}

// Close stops serving, waits for requests in progress and removes the
// socket. It is idempotent.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		s.cancel()
		err = s.ln.Close()
		s.wg.Wait()
		os.Remove(s.path)
	})
	return err
}

// dial connects to the daemon's socket.
func dial(path string) (net.Conn, error) {
	c, err := net.DialTimeout("unix", path, ioTimeout)
	switch {
	case errors.Is(err, syscall.EACCES):
		return nil, fmt.Errorf("control: %s: permission denied: the socket is for root and the daemon's control_group", path)
	case err != nil:
		return nil, fmt.Errorf("control: is the daemon running? %w", err)
	}
	return c, nil
}

// Query asks the daemon at path for a snapshot.
func Query(path string) (*Snapshot, error) {
	c, err := dial(path)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	if err := json.NewEncoder(c).Encode(Request{Command: CommandSnapshot}); err != nil {
		return nil, fmt.Errorf("control: send: %w", err)
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return nil, fmt.Errorf("control: read: %w", err)
	}
	if resp.Error != "" {
		return nil, fmt.Errorf("control: daemon: %s", resp.Error)
	}
	if resp.Snapshot == nil {
		return nil, errors.New("control: daemon sent no snapshot")
	}
	return resp.Snapshot, nil
}

// Do asks the daemon at path to carry out command on name (an initiate or
// terminate) and returns its one-line result.
func Do(path, command, name string) (string, error) {
	c, err := dial(path)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ActionTimeout + 2*ioTimeout))
	if err := json.NewEncoder(c).Encode(Request{Command: command, Name: name}); err != nil {
		return "", fmt.Errorf("control: send: %w", err)
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return "", fmt.Errorf("control: read: %w", err)
	}
	if resp.Error != "" {
		return resp.Result, fmt.Errorf("%s %s: %s", command, name, resp.Error)
	}
	return resp.Result, nil
}
