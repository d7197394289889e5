// Package docker runs lading tasks in containers on a Docker Engine, or on any
// engine that serves the Docker Engine API (Podman's API service included).
//
// It speaks the Engine API through github.com/moby/moby/client with API
// version negotiation, so it works with Engine API 1.41 (Docker 20.10) and
// newer engines.
//
// # Configuration
//
// [Config] uses the property names and defaults of Kestra's Docker task
// runner: pullPolicy IF_NOT_PRESENT, the image's entrypoint cleared, delete
// and wait true, killGracePeriod 0 (kill at once). [ParseConfig] reads a
// Kestra taskRunner block as JSON, [ParseConfigMap] one that a YAML (or
// JSON) library decoded into a map[string]any, with the same checks and
// errors; lading itself reads no YAML. The properties are flat, as in
// Kestra; in Go they are grouped by concern in the embedded [Pull],
// [Container] and [Lifecycle], whose fields are promoted (cfg.PullPolicy,
// cfg.Memory, cfg.Delete) and which each validate on their own. What only
// the host program decides has no JSON form and is given to [New] as
// options: [WithLogger], [WithMaxConcurrency] (or [WithLimiter], a
// [runner.Limiter] shared with other runners), [WithAllow]. New parses the
// Config once (sizes, ports, the platform, the docker config file) for all
// its runs. Property names match exactly, case
// included, at every level (cpu, memory, credentials, deviceRequests); an
// unknown property is refused with the nearest name suggested
// ("pullPolicyy: unknown property; did you mean pullPolicy?"). Every error is
// a [*runner.FieldError] naming the property's path and its value as
// written, except inside credentials and config, whose values are never
// quoted. A docker config given by path (the config property) must be a
// regular file of at most [credentials.MaxConfigSize] (1 MiB); a named pipe,
// a device or a directory is refused without being read.
//
// Values are read as Kestra's Jackson mapper reads rendered properties, so
// a block whose values went through templates reads as it does in Kestra:
//
//   - a boolean (delete, wait, privileged, init, resume) takes true or
//     false, or a string holding one in any case ("false", " TRUE ");
//     Jackson takes only "true", "True" and "TRUE" (and false alike);
//   - a whole number (pidsLimit, pullRetries,
//     maxOutputBytes, maxOutputFiles, deviceRequests[].count) takes a
//     number or a string holding one ("100"); 1.5 and "1e2" are refused,
//     as Kestra refuses them once rendered;
//   - a string (user, shmSize, stopSignal, labels and options values, list
//     items, ...) takes a number or a boolean as its text (user: 1000 is
//     "1000"; shmSize: 67108864 is that many bytes);
//   - a duration (killGracePeriod, pullTimeout, pullStallTimeout,
//     statsInterval) takes a Go or ISO-8601 duration or a number of
//     seconds (5, "5", "1.5"), as Kestra's duration deserializer does;
//   - cpu.cpus and the memory sizes take numbers or strings, see packages
//     cpu and memory.
//
// Anything else is a [*runner.FieldError] naming the property and quoting
// the value: "yes" and "1" are not booleans, and an empty string (a
// template that rendered to nothing) is no value of any type, where Jackson
// would read it as unset.
//
// # What a workflow author may ask for
//
// A taskRunner block comes from a workflow author, who is not the host
// program. The settings that widen a container's reach beyond its own
// sandbox are refused by [New] unless the host program allows them with
// [WithAllow], and by [ParseConfig] and [Config.Validate], which allow
// none; [ParseConfigAllowing] reads a block with the host program's
// [Allow] (give New the same). [Allow] has no JSON form, so no block allows
// itself anything. The error names the property, its value and the field
// to set:
//
//   - networkMode "host": the host's network stack, services bound to its
//     127.0.0.1 included ([Allow.HostNetwork]);
//   - networkMode "container:<id>": another container's network namespace
//     ([Allow.ContainerNetwork]);
//   - networkMode naming a network: the containers on it ([Allow.Networks],
//     the allowed names, or "*" for any name), and any other mode another
//     engine knows (Podman's "ns:<path>" can name the host's namespace:
//     listed as written);
//   - privileged: true: every capability and the host's devices
//     ([Allow.Privileged]);
//   - deviceRequests: the host's GPUs and other devices
//     ([Allow.DeviceRequests]);
//   - portBindings: ports published on the host's interfaces
//     ([Allow.PortBindings]);
//   - volumes: bind mounts of host paths ([Allow.Volumes], Kestra's
//     volume-enabled plugin setting);
//   - runtime: the container's OCI runtime, its sandbox ([Allow.Runtimes]):
//     one a block names may be weaker than the engine's default;
//   - host, when a block sets it: the engine that receives the task's
//     secrets and the registry credentials lading finds ([Allow.Host]; a
//     Host set in Go needs nothing).
//
// Everything else is allowed without it: networkMode "bridge", "default" and
// "none"; extraHosts, which only writes the container's /etc/hosts (every
// address it names, the host gateway included, is reachable from the bridge
// anyway); user, which changes who the script is inside the container but
// not what it can reach (root in a container keeps the engine's default
// capabilities and isolation); the resource limits, labels, pull and stop
// settings. tls, config and credentials stay settable from a block, as in
// Kestra (tls and config name files of the host, read as the config
// limits say).
//
// # A run
//
// [Runner.Run] makes the image present as the pull policy says, creates a
// labelled container named lading-<run id>, attaches to its output and
// registers the wait before starting it (so neither a fast exit nor the first
// bytes are missed), reads stdout and stderr apart (no TTY) until the stream
// ends, and removes the container on every path, on a fresh bounded context,
// so a cancelled caller still leaves a clean engine. Lines the engine split
// into 16 KiB pieces arrive whole, because lines are cut on the bytes, not
// on the engine's frames.
//
// Every container carries the labels [LabelManaged], [LabelRun],
// [LabelCreated] and, when the task has an ID, [LabelTask].
//
// # Per-task settings
//
// A workflow whose tasks each carry a taskRunner block needs one Runner per
// block, on one engine connection and under one concurrency limit:
// [Runner.With] returns a Runner with another [Config] that shares its
// root's connection, [WithMaxConcurrency] slots and other options. Only the
// Runner [New] returned closes the connection; Close and Shutdown on one
// from With do nothing.
//
// # Shutting down
//
// [Runner.Shutdown] stops a Runner as net/http's Server.Shutdown stops a
// server: new runs are refused at once with [runner.ErrClosed], the runs in
// flight (on the root and every Runner from With) are waited for, and when
// the context ends first they are cancelled, with ErrClosed as the cause,
// and stop and remove their containers before the connection closes.
// [Runner.Close] is Shutdown without waiting: it cancels the runs in flight
// and returns once they have cleaned up.
//
// # Files under MOUNT
//
// With [FileHandlingMount] the container writes straight into the host
// working directory, so Run takes two steps of its own:
//
//   - A script that does not run as root must be able to write there. When
//     the host program runs as root, lading gives the container's user (its
//     numeric uid; a user name is read from the image's /etc/passwd, one
//     copy from the created container) the working directory, the output
//     directory and what it staged, for the run only: a directory lading
//     made stays 0700 (0755 for the output directory), never 0777, and a
//     caller's [runner.Task.WorkingDir] gets its own owner and mode back
//     exactly when Run returns. Other entries already in a caller's directory
//     keep their owner: the script writes them only where their modes let
//     it. While the run lasts, a local user with the same uid as the
//     container's user can reach what was given to it. When lading cannot
//     change owners (it does not run as root, or the user name is unknown),
//     what it made is opened to all (0777, files 0666) for the run instead,
//     with a warning in [runner.Result.Warnings], and closed again after; a
//     caller's directory the container's user cannot write is then an error
//     before the start ([runner.ErrInvalidTask], field workingDir).
//   - When Run returns, nothing under the working directory is a device,
//     FIFO or socket (removed), setuid, setgid or sticky, or writable by
//     group or others (those bits cleared, on a caller's files too); when
//     lading runs as root, entries owned by a user other than root and the
//     directory's owner are given to the directory's owner. Each removal and
//     cleared setuid or setgid bit is a warning (ten of each, then a count),
//     cleared write bits one warning with a count. Symbolic links the
//     script made are left as they are: [runner.Result.OutputFiles] lists
//     only regular files and never follows a link, so a program that reads
//     the working directory itself must not follow links either. The walk
//     runs on a fresh context bounded like every cleanup (30 s) and looks at
//     no more than [files.DefaultMaxSanitizeEntries] entries; when it cannot
//     finish, the working directory is left with mode 0700 and Run's error
//     says so. A run with [Lifecycle.Wait] false returns while the container
//     runs, so neither step happens for it.
//
// Runs may share a caller's working directory: lading running as root keeps
// a record of the runs using it (the trusted.lading.runs extended attribute,
// which a container cannot write, updated under a flock), so the first
// notes the directory's owner and mode, and the last to finish restores them
// and walks the whole tree while the others only make their own output
// directory safe. Runs sharing a directory under MOUNT must then run as the
// same user.
//
// VOLUME needs neither step: the container works on its own copy, and the
// files that come back are extracted with the same rules (see [files]).
//
// # Stopping
//
// When the context is cancelled or the task's timeout is reached, the
// container is killed at once (KillGracePeriod 0), or sent StopSignal
// (default SIGTERM) and killed after KillGracePeriod. Run returns once the
// container has stopped, with the output read up to then.
//
// The task's Timeout counts from the call (after the wait for a
// [WithMaxConcurrency] slot), pull and create included; its ScriptTimeout counts
// from the container's start, and when it is reached the output files are
// still collected. The first limit reached stops the run; the
// [*runner.TimeoutError] in the error says which (Limit "timeout" or
// "scriptTimeout").
//
// Once ctx is done, Run's error matches both ctx.Err() ([context.Canceled]
// or [context.DeadlineExceeded]) and [context.Cause](ctx) with [errors.Is],
// and says what the run was doing: its name, image, container and stage
// ("docker: run lading-<id> (image busybox, container 3f2a...) stopped while
// running: context canceled: <cause>: container stopped, exit code 137").
// It matches [runner.ErrTimeout] only when the task's own Timeout or
// ScriptTimeout was reached: not for a deadline of the caller's ctx, nor for a caller's cause
// that carries a timeout of its own (an errgroup passing on a sibling
// step's error): a caller's cause is matched itself, not what it wraps. A
// connection error seen after ctx is done is the cancel's doing and never
// matches [runner.ErrEngineUnreachable]. An invalid task or configuration
// is reported as such whatever ctx does: when ctx ends before the task
// was rendered, or cuts the rendering short, the task is rendered once
// more on a context of its own, for at most a second, to find out.
//
// # Bounded waits
//
// Like os/exec's Cmd.WaitDelay, no wait of Run after a cancel is left to
// the engine or to the host's writers:
//
//   - Every engine call made once ctx is done, and those under way then
//     that are not cancelled half-way (a create, a start), is bounded: the
//     stop gets KillGracePeriod + [EngineTimeout], the others (the wait for
//     the exit, the inspect, the removal) [EngineTimeout] (10 s). When one
//     goes unanswered (a frozen or overloaded engine), Run makes no further
//     call and returns an error matching [runner.ErrEngineUnresponsive]
//     that says which call was not answered; the container, and its
//     output files, are left on the engine for [Runner.Prune]. So with a
//     frozen engine Run returns within KillGracePeriod + EngineTimeout of
//     the cancel, with the output read until then.
//   - Once the container has exited, Run waits for its output to reach
//     Task.Stdout, Task.Stderr and Task.OnLine as long as bytes move; when
//     a writer or the callback has not returned for [OutputWaitDelay]
//     (5 s), Run returns an error matching [runner.ErrOutputBlocked],
//     without the outputs and line counts that write was holding. The call
//     under way returns when the writer does; nothing reaches the writers
//     or the callback after Run has returned.
//
// # Prune
//
// [Runner.Prune] removes the containers and volumes lading runs left
// behind. It never removes those of a run still in progress, whatever the
// container's state (only created while files are copied in, exited while
// they are collected): in this process it knows which runs are in progress
// (of every Runner); for another process on this host it keeps everything
// while that process lives; for another host, always. A container of a run
// with Wait false ([LabelDetached]) is the caller's: kept while the process
// that created it lives.
// # Output files
//
// [runner.Result.OutputFiles] lists only the files the run produced: those
// its script created or changed that the output globs match, and everything
// it wrote under the output directory. A file that was in the working
// directory before the start and that the script left alone is not an
// output, even when a glob matches it. A glob that matched none of them adds
// a warning naming it to [runner.Result.Warnings].
//
// Under VOLUME, lading records what it copies in (each file's size,
// modification time and mode) and asks the engine which paths the
// container's file system holds (GET /containers/{id}/changes); it then
// copies out only the changed paths the globs match, so a file nobody asked
// for is not read. On an engine without that list, or when it is longer
// than 32 MiB (a script can change any number of paths), lading copies the
// directories the globs start from and drops the rest while reading. Past
// 8 separate places to copy, those that share a directory are copied as
// that directory: its unwanted files are read and dropped, up to the last
// wanted one. A staged file
// comes back only if the container changed it: its size, time or mode
// differ from what was sent, or, when those are the same, its content does
// (compared while reading; an identical file is not rewritten).
//
// Under MOUNT the container writes into the host directory itself. Before
// the start, lading notes the files the globs can match (size, times, inode);
// afterwards a match counts as the run's when it is new or any of those
// changed.
//
// [Config.MaxOutputBytes] and [Config.MaxOutputFiles] bound what a run
// hands back under both strategies (a sparse file counts by its size): going
// over fails Run with an error matching [files.ErrLimit] and an empty
// OutputFiles. Under VOLUME nothing of the collection is left on the host
// (files it replaced are put back). Under MOUNT, where the files are already
// on the host, lading removes the output directory and the new files the
// globs match; files that existed before the run and were changed in place
// are left as the script left them (removing them would destroy the
// caller's files), and the error says how many. Under MOUNT the file count
// is of the files handed back; under VOLUME it also counts the directories
// the copy makes.
//
// Collection runs under the run's context and [runner.Task.Timeout]. Once
// they are done (the run was stopped, or the deadline came during the
// collection), it goes on for at most [CollectGracePeriod], so a stopped run
// still gets the files it made up to then; a collection still going on then
// is cut off, its partial output removed, and Run's error matches the
// cause ([runner.ErrTimeout] and [context.DeadlineExceeded], or
// [context.Canceled]).
//
// # Concurrent runs on one working directory
//
// Runs may share a [runner.Task.WorkingDir] at the same time. What they may
// expect:
//
//   - Under VOLUME, each run works on its own copy, taken when it starts; it
//     does not see what the others write until they have collected, and they
//     do not see its writes until it has.
//   - A run never writes back a file it did not change: a stale copy never
//     overwrites another run's newer file.
//   - Under VOLUME, a run never overwrites a host file that changed (or
//     appeared) since it staged the working directory. When its container
//     changed that file too, both changed it: the host's version is kept,
//     the run's is not collected, and a warning names the file. Decide which
//     step owns which files; lading does not merge them.
//   - Under VOLUME, a run's OutputFiles lists only what it wrote back, never
//     what another run brought back.
//   - Under MOUNT, all runs write into the same directory at once: no copies,
//     no lost writes, but no isolation either. lading sees only the directory
//     before the start and after the exit, so a file that another run (or any
//     other process) created or changed in between counts as this run's and
//     is listed in its OutputFiles. Give concurrent MOUNT runs different
//     output globs, or use their output directories, which are per run.
//   - Under both, the check and the write are not atomic: a host file changed
//     in the instant between them can still be replaced.
//
// # Warm pool
//
// A cold run costs what the engine takes to create and start a container
// (about 300 ms on Docker 20.10 here, BENCHMARKS.md); a task that runs for
// milliseconds pays it every time. [WithPool] keeps containers running
// instead, up to [Pool.Size] per runner configuration and image, and runs
// each task in one of them by exec:
//
//	r, err := docker.New(docker.Config{}, docker.WithPool(docker.Pool{Size: 4}))
//	...
//	defer r.Close()                             // removes the pool's containers
//	_ = r.Warm(ctx, "busybox:1.36")              // optional: start them now
//	res, err := r.Run(ctx, task)                 // res.Details.(*docker.Details).ExecID is set
//
// A pool container runs a keep-alive under the engine's init (tini,
// HostConfig.Init), which reaps what the tasks leave. The first task of a
// configuration and image warms one container (pulling as the pull policy
// says) and the pool warms the rest in the background; a free container
// unused for [Pool.IdleTimeout] (5 minutes by default) is removed, and
// warmed again on demand. When every container is taken a task waits for
// one ([PoolWait], under its ctx and Timeout) or runs cold ([PoolCold]).
// Two tasks never share a container at once. Runners from [Runner.With]
// share the pools: two with the same Config use the same pool. Close and
// Shutdown remove every container of the pools once no run uses them;
// [Runner.Prune] removes those of a process that died ([LabelPool]).
// [Runner.PoolStats] counts what the pools did.
//
// What a task may assume is what a cold run gives, and the conformance
// suite (runner/runnertest) holds the pool to it (TestConformancePool, every case): the same Result and
// errors, exit codes, outputs, output files (copied in and out as under
// VOLUME), env and secrets (given to the exec alone: the container's own
// environment is the image's), user, interpreter and entrypoint, templates,
// the working directory at the host's path (or containerWorkingDir),
// Timeout, ScriptTimeout and cancellation with [Lifecycle.KillGracePeriod],
// and OOM reporting. The task runs in a session of its own (setsid) with
// stdin from /dev/null, under a small script of the pool's (/bin/sh); an
// exec has no stop call, so a stop sends StopSignal to the task's processes
// from inside the container, and SIGKILL to what is left once the grace
// period has passed; when that cannot be done (a fork bomb holds every pid
// of pidsLimit) the container is killed and discarded. When the task's main
// process exits, everything it left running is killed, as when a cold
// run's container stops.
//
// Before a container takes another task, the pool checks, in the
// background, that the last one left nothing behind: no process of it
// survives (every process outside the init's session is stopped and
// killed, daemons and SIGTERM-ignoring ones included), its working
// directory is removed, and the container is as it was when warmed: the
// engine's list of changes (added, changed or deleted files anywhere in the
// container's file system but the directories above the working
// directories), the names under /dev, the files of /dev/shm and
// /dev/mqueue, /etc/hosts, /etc/hostname and /etc/resolv.conf, the listing
// (names, sizes, modes, times) of the image's VOLUME directories, and the
// memory cgroup's OOM-kill count. A container that fails a check, whose
// run met an engine error (an exec that failed, a copy that failed), whose
// task was OOM-killed (the limit is the container's: the kernel kills in
// the task first, which runs with the highest oom_score_adj) or that the
// engine stopped, is removed, never reused; the next task gets another. A
// task that exits non-zero, times out or is cancelled leaves its container
// to the check like any other. A task that installs a package, writes /tmp, /root or a profile
// file, or changes a file of the image, so costs a container, never the
// next task's isolation. The check costs a few tens of milliseconds, off the
// task's path (BENCHMARKS.md).
//
// What is not checked: SysV IPC objects, the network namespace's state
// (routes, firewall rules of a task with NET_ADMIN), kernel keyrings, the
// contents of a VOLUME file changed without a change of its size or time,
// the metadata of a directory above a working directory, and host
// directories mounted with volumes (shared with the host by design, as for
// cold runs). The hostname, the network namespace and the memory and CPU
// accounting of the cgroup are the container's, shared by its tasks over
// time. So these tasks must not use the pool (give them a Runner without
// it, from [New]): tasks that need a clean root file system or a cgroup of
// their own (stats, memory peaks, a cgroup-level limit per task), PID 1 or a
// hostname of their own, or that rely on kernel state the list above does
// not check. A configuration the pool cannot serve runs cold, as without
// it: fileHandlingStrategy MOUNT (a container's mounts are fixed when it is
// created), portBindings, privileged, statsInterval, resume, wait or delete
// false; so does a task with OnStats. The image needs /bin/sh, rm, ls and
// mkdir (busybox or coreutils; setsid where it has it); one without them
// runs its tasks cold, with a warning in the result.
//
// The pool's tests run on Docker 20.10 and on Podman 4.3, where an OOM kill
// in a pool container is reported (from the cgroup's count) though a cold
// run's is not; they have not been run under runsc.
//
// Limits (cpu, memory, pidsLimit) are per container: a pool of Size
// containers may take Size times the memory limit, and each idle container
// holds its keep-alive (tini, a shell and sleep: a few hundred KiB, no CPU).
// The pool's own processes take 4 pids of pidsLimit (tini, the keep-alive's
// shell and sleep, the task script). Size the pool to the tasks that run at
// once (with a [WithMaxConcurrency] of n, a Size of n), and mind that a
// cold run and the pool share the engine: a pool larger than the tasks in
// flight only costs memory. [PoolStats] says whether tasks wait (Busy at
// Size) or run cold.
//
// # Engines
//
// CI runs the docker package's tests on Docker 20.10 (runc), on Docker with
// gVisor's runsc ([Container.Runtime], the conformance suite) and on Podman
// 4.3's API service (rootful); README's Engines table says what differs. In
// short:
//
//   - Docker 20.10 sets State.OOMKilled only when containerd's OOM event
//     reaches it before the exit event; under load they come in either
//     order. Under a memory limit lading therefore also follows the
//     container's "oom" events from before its start, and a 137 exit that
//     State does not call OOM waits up to [OOMEventDelay] for a late one.
//   - Podman 4.3 never reports an OOM kill (State.OOMKilled stays false and
//     it leaves no other trace): an OOM-killed script reads as exit code
//     137 with [runner.ExitError] OOMKilled false. Its pull progress has the
//     layers' stages but no byte counts, and its stats stream sends a sample
//     every 5 s, without max_usage. Its default capabilities leave out
//     CAP_MKNOD, and its inspect reports HostConfig.Runtime "oci".
//   - Rootless Podman on a cgroup v1 host ignores memory, CPU and pids
//     limits (Podman warns "Resource limits are not supported and ignored on
//     cgroups V1 rootless systems"; lading's run does not fail), and its
//     bridge network needs /dev/net/tun for slirp4netns: without it every
//     run fails to attach ("failed to mount runtime directory for rootless
//     netns", HTTP 409); networkMode "none" works. With MOUNT, files the
//     container's root writes come back owned by the user, and a non-root
//     container user (mapped to a subordinate uid) cannot write the
//     working directory.
//   - runsc: the script sees gVisor's kernel (uname 4.4.0), no cgroup file
//     system, and /proc/meminfo sized to the memory limit; the memory limit
//     and OOM reporting hold; pidsLimit counts the sandbox's own threads too
//     (with 20 the start failed, with 30 it hung, 50 worked); runs take
//     longer.
//   - A tcp:// engine: TLS from [Config.TLS] or DOCKER_TLS_VERIFY and
//     DOCKER_CERT_PATH; a failed handshake is
//     [runner.ErrEngineUnreachable] with what to fix (tls.ca, tls.cert and
//     tls.key). VOLUME works remotely; MOUNT fails before the script starts
//     when the engine cannot see the host's working directory.
//   - Docker CLI contexts: with neither Host, TLS nor DOCKER_HOST set,
//     DOCKER_CONTEXT (else the CLI config's currentContext) selects the
//     engine and its TLS files, read with the docker CLI's own context
//     store, in the CLI's order; a context that does not exist is
//     [runner.ErrInvalidConfig] from [New], naming it.
//
// # Example
//
//	r, err := docker.New(docker.Config{Pull: docker.Pull{PullPolicy: docker.PullIfNotPresent}})
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer r.Close()
//	res, err := r.Run(ctx, runner.Task{
//		Image:    "busybox:1.36",
//		Commands: []string{"echo Hello World", `echo '::{"outputs":{"greeting":"hi"}}::'`},
//		Env:      map[string]string{"NAME": "x"},
//		Stdout:   os.Stdout,
//		Stderr:   os.Stderr,
//	})
//	var exit *runner.ExitError
//	if errors.As(err, &exit) {
//		log.Printf("script failed with %d; outputs so far: %v", exit.ExitCode, res.Outputs)
//	}
package docker
