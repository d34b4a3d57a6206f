// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/hostconns"
)

// The screen is a title line, the column header, the rows, two detail lines
// of the selected row, the totals and the keys.
const chromeLines = 6

// keysHelp is the last line: every key the view takes.
const keysHelp = "q quit  ↑↓ select  ←→ sort  r reverse  a aggregate  / filter  esc clear  p pause"

var (
	titleStyle    = lipgloss.NewStyle().Bold(true)
	headerStyle   = lipgloss.NewStyle().Bold(true).Underline(true)
	sortedStyle   = lipgloss.NewStyle().Bold(true).Underline(true).Reverse(true)
	selectedStyle = lipgloss.NewStyle().Reverse(true)
	closedStyle   = lipgloss.NewStyle().Faint(true)
	faintStyle    = lipgloss.NewStyle().Faint(true)
	errorStyle    = lipgloss.NewStyle().Bold(true)
)

// runTUI runs the full-screen view until q, ctrl-c or ctx ends.
func runTUI(ctx context.Context, tr *hostconns.Tracer, opts options) error {
	m := &model{ctx: ctx, tr: tr, interval: opts.interval, grouped: opts.grouped, filter: opts.filter,
		sortCol: opts.sortCol, asc: opts.asc, width: 80, height: 24}
	p := tea.NewProgram(m, tea.WithAltScreen(), tea.WithContext(ctx))
	_, err := p.Run()
	if err != nil && ctx.Err() != nil {
		return nil // interrupted: not an error
	}
	return err
}

// snapMsg carries one poll to the view.
type snapMsg struct {
	snap hostconns.Snapshot
	err  error
}

// model is the view's state. It polls the tracer in a command, one poll at
// a time: the next is scheduled when the previous one arrived.
type model struct {
	ctx      context.Context
	tr       *hostconns.Tracer
	interval time.Duration

	snap    hostconns.Snapshot
	polled  bool // snap holds a poll
	pollErr error
	shown   []hostconns.Row // the rows as shown: grouped, filtered, sorted

	grouped  bool
	filter   filter
	sortCol  int
	asc      bool
	paused   bool
	selected string // rowID of the selected row
	top      int    // index of the first row on screen

	editing  bool // the filter line has the keyboard
	input    string
	inputErr string

	width, height int
	quitting      bool
}

func (m *model) Init() tea.Cmd { return m.poll() }

func (m *model) poll() tea.Cmd {
	return tea.Tick(m.interval, func(time.Time) tea.Msg {
		s, err := m.tr.Poll(m.ctx)
		return snapMsg{s, err}
	})
}

func (m *model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case snapMsg:
		m.pollErr = msg.err
		if msg.err == nil && !m.paused {
			m.snap, m.polled = msg.snap, true
		}
		m.refresh()
		return m, m.poll()
	case tea.KeyMsg:
		if m.editing {
			m.editKey(msg)
			return m, nil
		}
		return m, m.key(msg)
	}
	return m, nil
}

// key handles a key of the table.
func (m *model) key(k tea.KeyMsg) tea.Cmd {
	switch k.String() {
	case "q", "ctrl+c":
		// The last frame is blank: a terminal that copies anything of the
		// alternate screen back (tmux reflowing it after a resize) finds
		// nothing of the view to leave behind.
		m.quitting = true
		return tea.Quit
	case "up", "k":
		m.move(-1)
	case "down", "j":
		m.move(1)
	case "pgup":
		m.move(-m.bodyLines())
	case "pgdown":
		m.move(m.bodyLines())
	case "home":
		m.move(-len(m.shown))
	case "end":
		m.move(len(m.shown))
	case "left", "<":
		m.moveSort(-1)
	case "right", ">":
		m.moveSort(1)
	case "r":
		m.asc = !m.asc
	case "a":
		m.grouped = !m.grouped
		if !m.grouped && columns[m.sortCol].group {
			m.sortCol = defaultSort
		}
	case "/":
		m.editing, m.input, m.inputErr = true, m.filter.text, ""
	case "esc":
		m.filter = filter{}
	case "p", " ":
		m.paused = !m.paused
	}
	m.refresh()
	return nil
}

// editKey handles a key while the filter is typed.
func (m *model) editKey(k tea.KeyMsg) {
	switch k.Type {
	case tea.KeyEnter:
		f, err := parseFilter(m.input)
		if err != nil {
			m.inputErr = err.Error()
			return
		}
		m.filter, m.editing = f, false
		m.refresh()
	case tea.KeyEsc, tea.KeyCtrlC:
		m.editing = false
	case tea.KeyBackspace:
		if r := []rune(m.input); len(r) > 0 {
			m.input = string(r[:len(r)-1])
		}
	case tea.KeyCtrlU:
		m.input = ""
	case tea.KeyRunes, tea.KeySpace:
		m.input += string(k.Runes)
		if k.Type == tea.KeySpace {
			m.input += " "
		}
	}
}

// moveSort sorts by the next column to the left (-1) or right (1): any
// column of the mode, shown at this width or not (the title names it).
func (m *model) moveSort(d int) {
	var cols []int
	for i, c := range columns {
		if m.grouped || !c.group {
			cols = append(cols, i)
		}
	}
	i := slices.Index(cols, m.sortCol)
	if i < 0 { // a groups-only column, after leaving aggregation
		i = 0
	}
	m.sortCol = cols[(i+d+len(cols))%len(cols)]
}

// refresh recomputes the rows shown and keeps the selection on its row.
func (m *model) refresh() {
	m.shown = rows(&m.snap, m.grouped, &m.filter, m.sortCol, m.asc)
	m.clampTop(m.selectedIndex())
}

func (m *model) selectedIndex() int {
	i := slices.IndexFunc(m.shown, func(r hostconns.Row) bool { return rowID(&r) == m.selected })
	if i < 0 && len(m.shown) > 0 {
		i = 0
		m.selected = rowID(&m.shown[0])
	}
	return i
}

func (m *model) move(d int) {
	if len(m.shown) == 0 {
		return
	}
	i := min(max(m.selectedIndex()+d, 0), len(m.shown)-1)
	m.selected = rowID(&m.shown[i])
	m.clampTop(i)
}

// clampTop scrolls so that row i is on screen.
func (m *model) clampTop(i int) {
	n := m.bodyLines()
	switch {
	case i < 0:
		m.top = 0
	case i < m.top:
		m.top = i
	case i >= m.top+n:
		m.top = i - n + 1
	}
	m.top = max(0, min(m.top, len(m.shown)-n))
}

func (m *model) bodyLines() int { return max(1, m.height-chromeLines) }

func (m *model) View() string {
	if m.quitting {
		return ""
	}
	w := m.width
	var b strings.Builder
	line := func(s string, st *lipgloss.Style) {
		s = fit(s, w)
		if st != nil {
			s = st.Render(s)
		}
		b.WriteString(s)
		b.WriteByte('\n')
	}

	mode := "per connection"
	if m.grouped {
		mode = "aggregated"
	}
	order := "desc"
	if m.asc {
		order = "asc"
	}
	cols := layout(w, m.grouped)
	sortName := columns[m.sortCol].title
	if !slices.ContainsFunc(cols, func(c placed) bool { return c.col == m.sortCol }) {
		sortName += " (off screen)"
	}
	title := fmt.Sprintf("nettop  %s  every %v  %s  sort %s %s", m.snap.Time.Format("15:04:05"), m.interval, mode, sortName, order)
	if !m.polled {
		title = fmt.Sprintf("nettop  tracing: first refresh in %v", m.interval)
	}
	if !m.filter.empty() {
		title += "  filter " + m.filter.text
	}
	if m.paused {
		title += "  PAUSED"
	}
	line(title, &titleStyle)

	var hdr []string
	for _, c := range cols {
		t := columns[c.col].title
		st := headerStyle
		if c.col == m.sortCol {
			st = sortedStyle
		}
		hdr = append(hdr, st.Render(pad(t, c.width, columns[c.col].right)))
	}
	b.WriteString(strings.Join(hdr, " "))
	b.WriteByte('\n')

	n := m.bodyLines()
	sel := m.selectedIndex()
	for i := m.top; i < m.top+n; i++ {
		if i >= len(m.shown) {
			b.WriteByte('\n')
			continue
		}
		r := &m.shown[i]
		var cells []string
		for _, c := range cols {
			cells = append(cells, cellText(&columns[c.col], r, c.width))
		}
		s := fit(strings.Join(cells, " "), w)
		switch {
		case i == sel:
			s = selectedStyle.Render(pad(s, w, false))
		case r.Closed:
			s = closedStyle.Render(s)
		}
		b.WriteString(s)
		b.WriteByte('\n')
	}

	d1, d2 := "", ""
	if sel >= 0 {
		d1, d2 = detail(&m.shown[sel])
	}
	line(d1, nil)
	line(d2, nil)
	if m.pollErr != nil {
		line("poll: "+m.pollErr.Error(), &errorStyle)
	} else {
		line(totals(&m.snap, m.shown), nil)
	}
	switch {
	case m.editing && m.inputErr != "":
		b.WriteString(errorStyle.Render(fit("filter: "+m.input+"_  "+m.inputErr, w)))
	case m.editing:
		b.WriteString(fit("filter: "+m.input+"_  (enter: apply, esc: cancel; proc: port: cidr: proto:)", w))
	default:
		b.WriteString(faintStyle.Render(fit(keysHelp, w)))
	}
	return b.String()
}

// cellText is the cell of column c for r in width characters.
func cellText(c *column, r *hostconns.Row, width int) string {
	s := c.cell(r)
	if ansi.StringWidth(s) > width && c.short != nil {
		s = c.short(r)
	}
	return pad(s, width, c.right)
}

// detail is everything about r, for the two lines under the table.
func detail(r *hostconns.Row) (string, string) {
	d1 := fmt.Sprintf("pid %d %s  container %s", r.PID, dash(r.Process), dash(r.ContainerID))
	if r.PodUID != "" {
		d1 += "  pod " + r.PodUID
	}
	d1 += fmt.Sprintf("  netns %d  local %s  peer %s", r.Netns, endpoint(r.LocalAddress, r.LocalPort), endpoint(r.PeerAddress, r.PeerPort))
	if r.PeerName != "" {
		d1 += " (" + r.PeerName + ")"
	}
	d2 := fmt.Sprintf("%s %s %s %s  tx %d B %d pkts %s/s  rx %d B %d pkts %s/s  rtt %s/%s  retr %d syn %d",
		r.Direction, r.Transport, r.NetworkType, dash(r.Stack()), r.SentBytes, r.SentPackets, human(r.SentPacketsRate),
		r.ReceivedBytes, r.ReceivedPackets, human(r.RecvPacketsRate), rtt(r.RTTMicros), rtt(r.RTTVarMicros), r.Retransmits, r.SynRetransmits)
	if r.Connections != 1 {
		d2 += "  conns " + strconv.Itoa(r.Connections)
	}
	if r.Closed {
		d2 += "  closed"
	}
	return d1, d2
}

// placed is a column on screen and its width there.
type placed struct{ col, width int }

// layout places the columns that fit in width and gives the room left to
// the flexible ones (process, endpoints), in table order.
func layout(width int, grouped bool) []placed {
	var out []placed
	spare := width - used(visible(width, grouped))
	for _, i := range visible(width, grouped) {
		c := columns[i]
		w := c.width
		if grow := min(spare, c.flex-c.width); grow > 0 {
			w += grow
			spare -= grow
		}
		out = append(out, placed{i, w})
	}
	return out
}

// fit cuts s to width cells.
func fit(s string, width int) string { return ansi.Truncate(s, width, "…") }

// pad fits s in exactly width cells, right-aligned if right.
func pad(s string, width int, right bool) string {
	s = fit(s, width)
	gap := strings.Repeat(" ", max(0, width-ansi.StringWidth(s)))
	if right {
		return gap + s
	}
	return s + gap
}
