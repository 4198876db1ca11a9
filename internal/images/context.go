package images

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"time"
)

// hashScheme changes whenever the way inputs are hashed changes, so old
// images are rebuilt rather than wrongly matched.
const hashScheme = "claude-bottle images v2"

// inputHash is the sha256 of everything a build depends on that we control:
// the Dockerfile, every context file's name, mode and content digest, and the build
// args. Every field is length-prefixed so no two inputs hash alike by
// shifting bytes between fields.
func inputHash(dockerfile []byte, files []file, args map[string]*string) string {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field([]byte(hashScheme))
	field(dockerfile)
	sorted := slices.SortedFunc(slices.Values(files), func(a, b file) int {
		if a.name < b.name {
			return -1
		}
		if a.name > b.name {
			return 1
		}
		return 0
	})
	for _, f := range sorted {
		field([]byte(f.name))
		field([]byte(fmt.Sprintf("%o", f.mode)))
		sum := f.digest()
		field(sum[:])
	}
	for _, k := range slices.Sorted(maps.Keys(args)) {
		field([]byte(k))
		if v := args[k]; v == nil {
			field([]byte{0}) // unset: distinct from any string value, which is prefixed by 1
		} else {
			field(append([]byte{1}, *v...))
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// contextTar packs the Dockerfile (as "Dockerfile") and files into a build context.
// Fixed times keep the tar itself reproducible.
func contextTar(dockerfile []byte, files []file) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	all := append([]file{{name: "Dockerfile", mode: 0o644, data: dockerfile}}, files...)
	for _, f := range all {
		data, err := f.content()
		if err != nil {
			return nil, fmt.Errorf("build context: %w", err)
		}
		hdr := &tar.Header{
			Name: f.name, Mode: f.mode, Size: int64(len(data)),
			Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0), Format: tar.FormatPAX,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("build context: %w", err)
		}
		if _, err := tw.Write(data); err != nil {
			return nil, fmt.Errorf("build context: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("build context: %w", err)
	}
	return buf.Bytes(), nil
}
