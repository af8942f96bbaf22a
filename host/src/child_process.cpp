// SPDX-License-Identifier: BSD-3-Clause
#include <aotiplug/host/child_process.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

extern char** environ;

namespace aotiplug {

std::string ChildResult::describe() const {
  if (!started) return "could not be started: " + start_error;
  if (timed_out) {
    const double s = std::round(limit_seconds * 10) / 10;
    char text[32];
    std::snprintf(text, sizeof text, "%g", s);
    return std::string("timed out after ") + text + " s";
  }
  if (signaled) return "died of signal " + std::to_string(signal) + " (" + ::strsignal(signal) + ")";
  if (exited) return "exited with status " + std::to_string(exit_code);
  return "ended in an unknown way";
}

namespace {

struct Pipe {
  int read = -1, write = -1;
  bool open() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return false;
    read = fds[0];
    write = fds[1];
    return true;
  }
  ~Pipe() {
    if (read >= 0) ::close(read);
    if (write >= 0) ::close(write);
  }
};

}  // namespace

ChildResult runChild(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                     const ChildLineHandler& on_line, const ChildOptions& options) {
  using Clock = std::chrono::steady_clock;
  ChildResult result;
  Pipe out, err;
  if (!out.open() || !err.open()) {
    result.start_error = std::string("pipe: ") + std::strerror(errno);
    return result;
  }
  std::vector<std::string> storage = argv;
  std::vector<char*> args;
  for (auto& a : storage) args.push_back(a.data());
  args.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out.write, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err.write, STDERR_FILENO);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGCHLD}) sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (options.own_process_group) {
    posix_spawnattr_setpgroup(&attributes, 0);
    flags |= POSIX_SPAWN_SETPGROUP;
  }
  posix_spawnattr_setflags(&attributes, flags);
  pid_t pid = 0;
  const auto start = Clock::now();
  // The environment: ours, with the caller's entries replacing those of the same name.
  std::vector<std::string> env_storage = options.environment;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const auto& mine : options.environment) replaced = replaced || mine.compare(0, name.size() + 1, name + "=") == 0;
    if (!replaced) env_storage.push_back(entry);
  }
  std::vector<char*> envp;
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  const int rc = posix_spawn(&pid, args[0], &actions, &attributes, args.data(), envp.data());
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out.write);
  out.write = -1;
  ::close(err.write);
  err.write = -1;
  if (rc != 0) {
    result.start_error = std::string(argv.empty() ? "" : argv[0]) + ": " + std::strerror(rc);
    return result;
  }
  result.started = true;

  auto deadline = start + timeout;
  std::chrono::milliseconds limit = timeout;
  std::string partial;
  const auto deliver = [&](const std::string& line) {
    result.lines.push_back(line);
    if (on_line) {
      const std::chrono::milliseconds next = on_line(line);
      if (next.count() > 0) {
        deadline = Clock::now() + next;
        limit = next;
      }
    }
  };
  bool out_open = true, err_open = true;
  auto next_tick = start + std::chrono::seconds(1);
  while (out_open || err_open) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      break;
    }
    pollfd fds[2] = {{out_open ? out.read : -1, POLLIN, 0}, {err_open ? err.read : -1, POLLIN, 0}};
    const int ready = ::poll(fds, 2, static_cast<int>(std::min<long long>(left.count(), 1000)));
    if (ready < 0 && errno != EINTR) break;
    if (options.on_tick && Clock::now() >= next_tick) {
      options.on_tick(std::chrono::duration<double>(Clock::now() - start).count());
      next_tick = Clock::now() + std::chrono::seconds(1);
    }
    char buf[4096];
    if (out_open && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      const ssize_t n = ::read(out.read, buf, sizeof buf);
      if (n <= 0) {
        out_open = false;
      } else {
        partial.append(buf, static_cast<std::size_t>(n));
        for (std::size_t nl; (nl = partial.find('\n')) != std::string::npos;) {
          deliver(partial.substr(0, nl));
          partial.erase(0, nl + 1);
        }
      }
    }
    if (err_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      const ssize_t n = ::read(err.read, buf, sizeof buf);
      if (n <= 0) {
        err_open = false;
      } else {
        result.errors.append(buf, static_cast<std::size_t>(n));
        if (result.errors.size() > 16384) result.errors.erase(0, result.errors.size() - 16384);
      }
    }
  }
  if (!partial.empty()) deliver(partial);
  const auto killChild = [&] {
    if (options.own_process_group) ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
  };
  if (result.timed_out) killChild();
  int status = 0;
  // The pipes closed: the child is ending (or a descendant kept them; then it is killed).
  for (;;) {
    const pid_t w = ::waitpid(pid, &status, result.timed_out ? 0 : WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) break;
    if (w == 0) {
      if (Clock::now() >= deadline) {
        result.timed_out = true;
        killChild();
      } else {
        ::usleep(2000);
      }
    }
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.limit_seconds = std::chrono::duration<double>(limit).count();
  if (!result.timed_out) {
    if (WIFEXITED(status)) {
      result.exited = true;
      result.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      result.signaled = true;
      result.signal = WTERMSIG(status);
    }
  }
  return result;
}

}  // namespace aotiplug
