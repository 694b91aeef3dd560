# Finds what hoist-snapshotter needs, all from Debian packages (scripts/setup.sh):
#   libgrpc++-dev, protobuf-compiler-grpc (grpc_cpp_plugin), libprotobuf-dev, protobuf-compiler,
#   golang-github-containerd-containerd-dev (containerd's api/*.proto),
#   golang-github-gogo-protobuf-dev (gogoproto/gogo.proto).
# A missing piece is one configure error naming it; -DHOIST_SNAPSHOTTER=OFF builds without.
set(HOIST_GOCODE_DIR "/usr/share/gocode/src" CACHE PATH
    "Root of Debian's Go sources (containerd's and gogo's .proto files)")

set(_hoist_missing "")
pkg_check_modules(GRPCPP IMPORTED_TARGET grpc++)
if(NOT GRPCPP_FOUND)
  list(APPEND _hoist_missing "grpc++ (libgrpc++-dev)")
endif()
pkg_check_modules(PROTOBUF IMPORTED_TARGET protobuf)
if(NOT PROTOBUF_FOUND)
  list(APPEND _hoist_missing "protobuf (libprotobuf-dev)")
endif()
find_program(HOIST_PROTOC protoc)
if(NOT HOIST_PROTOC)
  list(APPEND _hoist_missing "protoc (protobuf-compiler)")
endif()
find_program(HOIST_GRPC_CPP_PLUGIN grpc_cpp_plugin)
if(NOT HOIST_GRPC_CPP_PLUGIN)
  list(APPEND _hoist_missing "grpc_cpp_plugin (protobuf-compiler-grpc)")
endif()
set(HOIST_CONTAINERD_API_DIR "${HOIST_GOCODE_DIR}/github.com/containerd/containerd/api")
foreach(_f services/snapshots/v1/snapshots.proto types/mount.proto)
  if(NOT EXISTS "${HOIST_CONTAINERD_API_DIR}/${_f}")
    list(APPEND _hoist_missing "${HOIST_CONTAINERD_API_DIR}/${_f} (golang-github-containerd-containerd-dev)")
  endif()
endforeach()
set(HOIST_GOGO_PROTO "${HOIST_GOCODE_DIR}/github.com/gogo/protobuf/gogoproto/gogo.proto")
if(NOT EXISTS "${HOIST_GOGO_PROTO}")
  list(APPEND _hoist_missing "${HOIST_GOGO_PROTO} (golang-github-gogo-protobuf-dev)")
endif()
find_path(HOIST_PROTOBUF_INCLUDE_DIR google/protobuf/timestamp.proto PATHS ${PROTOBUF_INCLUDE_DIRS} /usr/include)
if(NOT HOIST_PROTOBUF_INCLUDE_DIR)
  list(APPEND _hoist_missing "google/protobuf/*.proto (libprotobuf-dev)")
endif()

if(_hoist_missing)
  list(JOIN _hoist_missing ", " _hoist_missing_text)
  message(FATAL_ERROR "HOIST_SNAPSHOTTER is ON but these are missing: ${_hoist_missing_text}. "
                      "Run scripts/setup.sh, or configure with -DHOIST_SNAPSHOTTER=OFF.")
endif()
