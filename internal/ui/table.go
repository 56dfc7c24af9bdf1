package ui

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Table lays out human-readable rows in aligned columns. Rows are buffered
// until Flush, which writes the whole table at once. Commands get one from
// Printer.Table, which discards it under --json.
type Table struct {
	out io.Writer
	buf bytes.Buffer
	tw  *tabwriter.Writer
}

// NewTable starts a table on w with the given column headers (printed in
// upper case, like govc and kubectl do).
func NewTable(w io.Writer, headers ...string) *Table {
	t := &Table{out: w}
	t.tw = tabwriter.NewWriter(&t.buf, 0, 0, 2, ' ', 0)
	if len(headers) > 0 {
		up := make([]any, len(headers))
		for i, h := range headers {
			up[i] = strings.ToUpper(h)
		}
		t.Row(up...)
	}
	return t
}

// Row adds one row; each value is formatted with %v. Tabs and newlines in
// values are replaced by spaces so they cannot break the layout.
func (t *Table) Row(cols ...any) {
	cells := make([]string, len(cols))
	for i, c := range cols {
		cells[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(fmt.Sprint(c))
	}
	_, _ = io.WriteString(t.tw, strings.Join(cells, "\t")+"\n")
}

// Flush writes the rows added so far, aligned, in one write.
func (t *Table) Flush() error {
	if err := t.tw.Flush(); err != nil {
		return err
	}
	_, err := t.out.Write(t.buf.Bytes())
	t.buf.Reset()
	return err
}
