// Command istio-charts writes the Helm charts and profiles that Istio embeds in its
// `manifests` package into a directory: one version of the operator's chart catalogue.
// Which Istio it writes is decided by the module file it is run with
// (`go run -modfile=<version>.mod . <dir>`), one per catalogue version.
package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"

	"istio.io/istio/manifests"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: istio-charts DIR")
		os.Exit(2)
	}
	if err := write(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "istio-charts:", err)
		os.Exit(1)
	}
}

func write(dir string) error {
	err := fs.WalkDir(manifests.FS, ".", func(path string, entry fs.DirEntry, err error) error {
		if err != nil || entry.IsDir() {
			return err
		}
		data, err := fs.ReadFile(manifests.FS, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		return err
	}
	// Where these charts came from, for `istio-operator charts list`.
	return os.WriteFile(filepath.Join(dir, "SOURCE"), []byte(source()+"\n"), 0o644)
}

func source() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "istio.io/istio (unknown version)"
	}
	for _, dep := range info.Deps {
		if dep.Path == "istio.io/istio" {
			return dep.Path + " " + dep.Version
		}
	}
	return "istio.io/istio (unknown version)"
}
