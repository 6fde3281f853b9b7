// The threads of this process whose name starts with a prefix, read from
// /proc/self/task (the delivery probes find srcu's library threads by name:
// "srcu-engine", "srcu-cb/N").
#pragma once

#include <dirent.h>
#include <sys/types.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace srcu_bench {

inline std::vector<pid_t> threads_named(const char* prefix) {
  std::vector<pid_t> found;
  if (DIR* d = opendir("/proc/self/task")) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream comm(std::string("/proc/self/task/") + e->d_name + "/comm");
      std::string name;
      std::getline(comm, name);
      if (name.rfind(prefix, 0) == 0) found.push_back(static_cast<pid_t>(std::atol(e->d_name)));
    }
    closedir(d);
  }
  return found;
}

}  // namespace srcu_bench
