// Command kubernetes runs the hello task as a pod on a Kubernetes cluster
// with lading's kubernetes runner and prints what it wrote, the outputs it
// reported and where it ran.
//
//	go run ./examples/kubernetes -kubeconfig ~/.kube/config          # busybox:1.36, pulled by the node if missing
//	KUBECONFIG=/var/tmp/lading-k8s/admin.kubeconfig go run ./examples/kubernetes -image lading-test/busybox:latest
//
// The cluster comes from -kubeconfig, else the KUBECONFIG variable, else
// ~/.kube/config (or the in-cluster configuration when the program runs in
// a pod), as kubectl reads them; the pod goes in -namespace, else the
// context's namespace, else "default". The CI cluster that
// .ci/kubernetes/up.sh starts has no registry: use the image it holds,
// lading-test/busybox:latest.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/lading-dev/lading/kubernetes"
	"github.com/lading-dev/lading/runner"
)

// options are the command's flags.
type options struct {
	Kubeconfig string
	Context    string
	Namespace  string
	Image      string
	// SidecarImage is the image of the containers that move files; the
	// hello task has none to move, so it is only checked.
	SidecarImage string
}

func main() {
	var o options
	flag.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: KUBECONFIG, else ~/.kube/config, else in-cluster)")
	flag.StringVar(&o.Context, "context", "", "kubeconfig context (default: its current context)")
	flag.StringVar(&o.Namespace, "namespace", "", `namespace of the pod (default: the context's, else "default")`)
	flag.StringVar(&o.Image, "image", "busybox:1.36", "image to run the script in")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kubernetes:", err)
		os.Exit(1)
	}
}

// run runs the hello task and writes its output and a summary to w.
func run(ctx context.Context, o options, w io.Writer) error {
	r, err := kubernetes.New(kubernetes.Config{
		Kubeconfig: o.Kubeconfig,
		Context:    o.Context,
		Namespace:  o.Namespace,
		// A Ctrl-C deletes the pod; the script gets 5 s between SIGTERM
		// and SIGKILL.
		KillGracePeriod: kubernetes.Duration(5 * time.Second),
		FileSidecar:     kubernetes.FileSidecar{Image: o.SidecarImage},
	})
	if err != nil {
		return err
	}
	res, err := r.Run(ctx, runner.Task{
		Image: o.Image,
		Commands: []string{
			`echo "Hello World from $NAME"`,
			`echo '::{"outputs":{"greeting":"hi"}}::'`,
		},
		Env:    map[string]string{"NAME": "lading"},
		Stdout: w,
		Stderr: w,
	})
	var exit *runner.ExitError
	if err != nil && !errors.As(err, &exit) {
		return err
	}
	defer os.RemoveAll(res.WorkingDir) // nothing in it is needed here
	d := res.Details.(*kubernetes.Details)
	fmt.Fprintf(w, "exit code: %d\n", res.ExitCode)
	fmt.Fprintf(w, "outputs:   %v\n", res.Outputs)
	fmt.Fprintf(w, "lines:     %d stdout, %d stderr, in %s\n", res.StdoutLines, res.StderrLines, res.Duration().Round(1e6))
	fmt.Fprintf(w, "pod:       %s/%s on node %s (deleted)\n", d.Namespace, d.Pod, d.Node)
	return err
}
