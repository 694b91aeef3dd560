#include "tests/harness/python_image.h"

#include <sstream>
#include <string>
#include <utility>

#include "base/file_util.h"
#include "tests/harness/subprocess.h"

namespace hoist::harness {
namespace {

Result<FileSpec> HostFile(const std::string& host_path, const std::string& image_path,
                          mode_t mode) {
  HOIST_ASSIGN_OR_RETURN(std::string content, ReadFile(host_path));
  return FileSpec::File(image_path, std::move(content), mode);
}

}  // namespace

Result<std::vector<LayerSpec>> PythonImageLayers(const std::vector<FileSpec>& base_extra) {
  std::vector<FileSpec> base;
  base.push_back(FileSpec::Dir("bin"));
  HOIST_ASSIGN_OR_RETURN(FileSpec busybox, HostFile("/bin/busybox", "bin/busybox", 0755));
  base.push_back(std::move(busybox));
  for (const char* applet : {"sh", "cat", "id", "pwd", "ls", "echo", "test", "sleep", "kill"}) {
    base.push_back(FileSpec::Symlink(std::string("bin/") + applet, "busybox"));
  }
  base.insert(base.end(), base_extra.begin(), base_extra.end());
  base.push_back(FileSpec::Dir("tmp", 01777));
  for (const char* dir : {"proc", "dev", "sys"}) base.push_back(FileSpec::Dir(dir));

  std::vector<FileSpec> py;
  HOIST_ASSIGN_OR_RETURN(FileSpec python,
                         HostFile("/usr/bin/python3.11", "usr/bin/python3.11", 0755));
  py.push_back(std::move(python));
  py.push_back(FileSpec::Symlink("usr/bin/python3", "python3.11"));
  HOIST_ASSIGN_OR_RETURN(std::string ldd, RunChecked({"ldd", "/usr/bin/python3.11"}));
  std::istringstream lines(ldd);
  std::string line;
  while (std::getline(lines, line)) {
    // "\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x...)" or "\t/lib64/ld-linux... (0x..)"
    std::istringstream f(line);
    std::string a, b, c;
    f >> a >> b >> c;
    std::string path = b == "=>" ? c : a;
    if (path.empty() || path[0] != '/') continue;
    HOIST_ASSIGN_OR_RETURN(FileSpec lib, HostFile(path, path.substr(1), 0755));
    py.push_back(std::move(lib));
  }
  HOIST_ASSIGN_OR_RETURN(FileSpec os_py,
                         HostFile("/usr/lib/python3.11/os.py", "usr/lib/python3.11/os.py", 0644));
  py.push_back(std::move(os_py));
  py.push_back(FileSpec::Dir("usr/lib/python3.11/lib-dynload"));
  for (const char* name : {"__init__.py", "aliases.py", "utf_8.py", "ascii.py", "latin_1.py"}) {
    HOIST_ASSIGN_OR_RETURN(FileSpec f,
                           HostFile(std::string("/usr/lib/python3.11/encodings/") + name,
                                    std::string("usr/lib/python3.11/encodings/") + name, 0644));
    py.push_back(std::move(f));
  }
  return std::vector<LayerSpec>{LayerSpec(std::move(base)), LayerSpec(std::move(py))};
}

}  // namespace hoist::harness
