package backup

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/vtpm-backup/vtpm-backup/repository"
	"github.com/vtpm-backup/vtpm-backup/repository/repotest"
	"github.com/vtpm-backup/vtpm-backup/storage/storagetest"
)

// cutReader serves data, then fails with err instead of io.EOF, the way
// an HTTP body does when the server closes the connection early.
type cutReader struct {
	r   io.Reader
	err error
}

func (c *cutReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF {
		return n, c.err
	}
	return n, err
}

func TestPipelineFileEnds(t *testing.T) {
	repo := repotest.New(t, repotest.Options{Backend: storagetest.NewMemory(), ChunkSize: repository.MinChunkSize}).Repository
	cs := int(repository.MinChunkSize)
	data := storagetest.Random(1, 2*cs+100)
	tests := []struct {
		name       string
		r          io.Reader
		wantErr    error
		wantSize   int64
		wantChunks int
	}{
		{"whole file", bytes.NewReader(data), nil, int64(len(data)), 3},
		{"exactly one chunk", bytes.NewReader(data[:cs]), nil, int64(cs), 1},
		{"empty", bytes.NewReader(nil), nil, 0, 0},
		{"cut short mid-chunk", &cutReader{bytes.NewReader(data[:cs+10]), io.ErrUnexpectedEOF}, io.ErrUnexpectedEOF, 0, 0},
		{"cut short at a chunk boundary", &cutReader{bytes.NewReader(data[:cs]), io.ErrUnexpectedEOF}, io.ErrUnexpectedEOF, 0, 0},
		{"connection reset", &cutReader{bytes.NewReader(data[:100]), errors.New("connection reset by peer")}, nil, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPipeline(repo, repository.NewIndex(), 2, nil, func(int64) {})
			defer p.close()
			size, _, chunks, err := p.store(t.Context(), tc.r)
			if _, cut := tc.r.(*cutReader); cut {
				if err == nil {
					t.Fatalf("a transfer cut short was stored as a %d-byte file", size)
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Fatalf("store = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || size != tc.wantSize || len(chunks) != tc.wantChunks {
				t.Fatalf("store = %d bytes, %d chunks, %v; want %d, %d", size, len(chunks), err, tc.wantSize, tc.wantChunks)
			}
		})
	}
}
