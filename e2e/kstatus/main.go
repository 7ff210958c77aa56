// kstatus prints the status that kstatus computes for a Kubernetes object, with both of its maintained
// implementations: sigs.k8s.io/cli-utils (upstream: kpt, Config Sync, kubectl-style tools) and its fork
// github.com/fluxcd/cli-utils (Flux's healthChecks/wait and Helm 4's --wait).
// Input: one object as JSON on stdin (e.g. `kubectl get ar web -o json`), or a List of them.
// Output: one JSON line per object:
//
//	{"name", "status", "message", "flux": {"status", "message"}} with status Current|InProgress|Failed|...
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	fluxstatus "github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type computed struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type result struct {
	Name string `json:"name"`
	computed
	Flux computed `json:"flux"`
}

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(data); err != nil {
		fail(fmt.Errorf("stdin is not a Kubernetes object: %w", err))
	}
	objects := []unstructured.Unstructured{*obj}
	if obj.IsList() {
		list, err := obj.ToList()
		if err != nil {
			fail(err)
		}
		objects = list.Items
	}
	out := json.NewEncoder(os.Stdout)
	for i := range objects {
		name := objects[i].GetName()
		upstream, err := status.Compute(objects[i].DeepCopy())
		if err != nil {
			fail(fmt.Errorf("%s: %w", name, err))
		}
		flux, err := fluxstatus.Compute(objects[i].DeepCopy())
		if err != nil {
			fail(fmt.Errorf("%s (flux): %w", name, err))
		}
		answer := result{
			Name:     name,
			computed: computed{upstream.Status.String(), upstream.Message},
			Flux:     computed{flux.Status.String(), flux.Message},
		}
		if err := out.Encode(answer); err != nil {
			fail(err)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kstatus:", err)
	os.Exit(1)
}
