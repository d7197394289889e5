package files

import (
	"context"
	"io"
)

// ctxReader stops a long copy when ctx ends: each read checks it first, so a
// copy stops within one buffer.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// writerOnly hides an *os.File's ReadFrom, so io.CopyBuffer uses the buffer
// it is given instead of a fresh 32 KiB one per file.
type writerOnly struct{ w io.Writer }

func (w writerOnly) Write(p []byte) (int, error) { return w.w.Write(p) }
