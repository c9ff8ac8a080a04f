"""This process's own cgroups in every mounted hierarchy (v1, v2, hybrid): where tests and
benchmarks nest the cgroups they create, and how they remove them again."""
import os


def own_cgroup_dirs(name=""):
    """`name` under this process's own cgroup, in every mounted hierarchy: where runc and
    monocri-runtime put a relative cgroupsPath."""
    with open("/proc/self/cgroup") as f:
        own = [line.rstrip("\n").split(":", 2) for line in f]
    dirs = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            before, after = line.split(" - ", 1)
            fields, (fstype, _, options) = before.split(), after.split()[:3]
            root, mountpoint = fields[3], fields[4]
            for hierarchy, controllers, path in own:
                if fstype == "cgroup2":
                    matches = hierarchy == "0"
                elif fstype == "cgroup":
                    matches = bool(controllers) and \
                        set(controllers.split(",")) <= set(options.split(","))
                else:
                    matches = False
                if matches:
                    if root != "/" and path.startswith(root):
                        path = path[len(root):]
                    dirs.append(os.path.join(mountpoint, path.lstrip("/"), name).rstrip("/"))
    return dirs


def remove_cgroups(name):
    """rmdir `name` (and what is under it, deepest first) in every hierarchy; returns the dirs
    that could not go (still holding processes)."""
    assert name, "refusing to remove this process's own cgroups"
    left = []
    for top in own_cgroup_dirs(name):
        if not os.path.isdir(top):
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda entry: -entry[0].count("/")):
            try:
                os.rmdir(dirpath)
            except OSError as error:
                left.append(f"{dirpath}: {error.strerror}")
    return left
