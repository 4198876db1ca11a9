package images

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/claude-bottle/claude-bottle/internal/docker"
)

// BuildWorkspace builds tag: base with dir copied to /workspace, owned by
// the agent user (uid 1000). Paths matched by dir's .claude-bottle-ignore
// (or, without one, its .dockerignore) are left out. Build output goes to
// progress (nil discards). secrets are host files that must never enter
// the image whatever the ignore file says (a deploy key, a token file the
// manifest names): any of them under dir is left out.
func BuildWorkspace(ctx context.Context, c *docker.Client, log *slog.Logger, base, tag, dir string, secrets []string, progress io.Writer) error {
	op := "build workspace image " + tag
	ig, ignoreFile, err := loadIgnore(dir)
	if err != nil {
		return fmt.Errorf("%s: read ignore file: %w", op, err)
	}
	ig.never = map[string]bool{}
	for _, s := range secrets {
		if rel, err := filepath.Rel(dir, s); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
			ig.never[filepath.ToSlash(rel)] = true
		}
	}
	log.Info("building workspace image", "image", tag, "base", base, "dir", dir, "ignore_file", ignoreFile)
	dockerfile := fmt.Sprintf("FROM %s\nCOPY --chown=1000:1000 workspace/ /workspace/\n", base)

	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := writeWorkspaceTar(pw, []byte(dockerfile), dir, ig)
		pw.CloseWithError(err)
		done <- err
	}()
	buildErr := c.BuildImage(ctx, docker.BuildSpec{
		Tag:     tag,
		Context: pr,
		Labels:  map[string]string{RoleLabel: "workspace", KindLabel: "workspace"},
	}, progress)
	// Unblock the writer if the build stopped reading early.
	pr.CloseWithError(io.ErrClosedPipe)
	tarErr := <-done
	if tarErr != nil {
		return fmt.Errorf("%s: pack %s: %w", op, dir, tarErr)
	}
	return buildErr
}

// writeWorkspaceTar streams the build context: the Dockerfile at the root and
// the workspace under workspace/, so nothing in dir can shadow the Dockerfile
// or act as the engine's own .dockerignore.
func writeWorkspaceTar(w io.Writer, dockerfile []byte, dir string, ig *ignorer) error {
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(dockerfile)), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := tw.Write(dockerfile); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "workspace/", Mode: 0o755, Typeflag: tar.TypeDir}); err != nil {
		return err
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if ig.never[rel] {
			return nil
		}
		if ig.excluded(rel) {
			// With a "!" rule something below may come back, so keep walking.
			if d.IsDir() && !ig.negation {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		var link string
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		case info.Mode().IsRegular(), info.IsDir():
		default:
			return nil // sockets, fifos, devices have no place in an image
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = "workspace/" + rel
		if info.IsDir() {
			hdr.Name += "/"
		}
		// Ownership comes from COPY --chown; host names and ids mean nothing inside.
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		// A file that grows while we read must not overrun its header.
		_, err = io.Copy(tw, io.LimitReader(f, hdr.Size))
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
