// The handoff parts that need no mount: the HandoffState format (round trip, refusals, the
// sealed memfd) and ConnectionIo + ReplayInit on a real libfuse session whose "device" is one end
// of a socketpair, so the test plays the kernel: it writes requests and reads the replies.
//
//   WithoutInitEveryRequestFails  the session answers a GETATTR before INIT with EIO (what a
//                                 taking-over daemon would do without the replay)
//   ReplayedInitIsSwallowed       ReplayInit writes nothing to the device, and afterwards the
//                                 same GETATTR reaches the filesystem's op and is answered
//   RecorderSeesTheKernelsInit    a fresh session's read hands the INIT bytes, exactly, to the
//                                 recorder, once
//   StateRoundTrip / StateRefusals / MemfdIsSealed
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "base/scoped_fd.h"
#include "fusefs/fuse_handoff.h"
#include "fusefs/handoff_state.h"

namespace hoist {
namespace {

std::string InitRequest(uint64_t unique) {
  fuse_in_header h{};
  fuse_init_in in{};
  h.len = sizeof(h) + sizeof(in);
  h.opcode = FUSE_INIT;
  h.unique = unique;
  in.major = 7;
  in.minor = 38;
  in.max_readahead = 1 << 20;
  in.flags = FUSE_ASYNC_READ | FUSE_DO_READDIRPLUS | FUSE_BIG_WRITES | FUSE_MAX_PAGES;
  std::string out(sizeof(h) + sizeof(in), '\0');
  std::memcpy(out.data(), &h, sizeof(h));
  std::memcpy(out.data() + sizeof(h), &in, sizeof(in));
  return out;
}

std::string GetattrRequest(uint64_t unique) {
  fuse_in_header h{};
  fuse_getattr_in in{};
  h.len = sizeof(h) + sizeof(in);
  h.opcode = FUSE_GETATTR;
  h.unique = unique;
  h.nodeid = 1;
  std::string out(sizeof(h) + sizeof(in), '\0');
  std::memcpy(out.data(), &h, sizeof(h));
  std::memcpy(out.data() + sizeof(h), &in, sizeof(in));
  return out;
}

void Getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  struct stat st {};
  st.st_ino = ino;
  st.st_mode = S_IFDIR | 0755;
  st.st_nlink = 2;
  fuse_reply_attr(req, &st, 1.0);
}

struct Session {
  Session() {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    kernel.Reset(sv[0]);
    device = sv[1];
    fuse_lowlevel_ops ops{};
    ops.getattr = Getattr;
    std::vector<std::string> args = {"test"};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    fuse_args fargs = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
    se = fuse_session_new(&fargs, &ops, sizeof(ops), nullptr);
    fuse_opt_free_args(&fargs);
  }
  ~Session() {
    ConnectionIo::Uninstall(device);
    if (se != nullptr) fuse_session_destroy(se);  // closes `device`
  }
  // Feeds `request` as if read from the device.
  void Process(std::string request) {
    fuse_buf buf{};
    buf.size = request.size();
    buf.mem = request.data();
    fuse_session_process_buf(se, &buf);
  }
  // The next reply written to the device, or "" when none is waiting.
  std::string Reply() {
    char buf[8192];
    const ssize_t n = ::recv(kernel.get(), buf, sizeof(buf), MSG_DONTWAIT);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }
  ScopedFd kernel;
  int device = -1;
  fuse_session* se = nullptr;
};

fuse_out_header Header(const std::string& reply) {
  fuse_out_header h{};
  if (reply.size() >= sizeof(h)) std::memcpy(&h, reply.data(), sizeof(h));
  return h;
}

TEST(ConnectionIoTest, WithoutInitEveryRequestFails) {
  Session s;
  ASSERT_NE(s.se, nullptr);
  ASSERT_TRUE(ConnectionIo::Install(s.se, s.device, {}).has_value());
  s.Process(GetattrRequest(8));
  const fuse_out_header h = Header(s.Reply());
  EXPECT_EQ(h.unique, 8u);
  EXPECT_EQ(h.error, -EIO);
}

TEST(ConnectionIoTest, ReplayedInitIsSwallowed) {
  Session s;
  ASSERT_NE(s.se, nullptr);
  ASSERT_TRUE(ConnectionIo::Install(s.se, s.device, {}).has_value());
  ASSERT_TRUE(ReplayInit(s.se, InitRequest(2)).has_value());
  EXPECT_EQ(s.Reply(), "") << "the INIT reply must not reach the kernel";
  s.Process(GetattrRequest(10));
  const std::string reply = s.Reply();
  const fuse_out_header h = Header(reply);
  EXPECT_EQ(h.unique, 10u);
  EXPECT_EQ(h.error, 0);
  ASSERT_EQ(reply.size(), sizeof(fuse_out_header) + sizeof(fuse_attr_out));
  fuse_attr_out attr{};
  std::memcpy(&attr, reply.data() + sizeof(fuse_out_header), sizeof(attr));
  EXPECT_EQ(attr.attr.ino, 1u);
  EXPECT_EQ(attr.attr.mode, static_cast<uint32_t>(S_IFDIR | 0755));
}

TEST(ConnectionIoTest, ReplayRefusesWhatIsNotAnInit) {
  Session s;
  ASSERT_NE(s.se, nullptr);
  ASSERT_TRUE(ConnectionIo::Install(s.se, s.device, {}).has_value());
  auto r = ReplayInit(s.se, GetattrRequest(2));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), EINVAL);
  auto short_one = ReplayInit(s.se, "abc");
  ASSERT_FALSE(short_one.has_value());
  EXPECT_EQ(short_one.error().code(), EINVAL);
}

TEST(ConnectionIoTest, RecorderSeesTheKernelsInit) {
  Session s;
  ASSERT_NE(s.se, nullptr);
  std::vector<std::string> seen;
  ASSERT_TRUE(ConnectionIo::Install(s.se, s.device, [&](std::string_view init) {
                seen.emplace_back(init);
              }).has_value());
  const std::string init = InitRequest(2);
  ASSERT_EQ(::send(s.kernel.get(), init.data(), init.size(), 0), static_cast<ssize_t>(init.size()));
  fuse_buf buf{};
  ASSERT_GT(fuse_session_receive_buf(s.se, &buf), 0);
  fuse_session_process_buf(s.se, &buf);
  const fuse_out_header h = Header(s.Reply());
  EXPECT_EQ(h.unique, 2u) << "the real INIT is answered";
  EXPECT_EQ(h.error, 0);
  // A second INIT-looking read is not recorded again.
  ASSERT_EQ(::send(s.kernel.get(), init.data(), init.size(), 0), static_cast<ssize_t>(init.size()));
  ASSERT_GT(fuse_session_receive_buf(s.se, &buf), 0);
  std::free(buf.mem);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], init);
}

HandoffState SampleState() {
  HandoffState s;
  s.mountpoint = "/mnt/x y";
  s.init = InitRequest(2);
  s.reference = "127.0.0.1:5000/a/b:v1";
  s.manifest_media_type = "application/vnd.oci.image.manifest.v1+json";
  s.manifest = std::string("{\"schemaVersion\":2}\0\xff", 21);
  s.from_local_store = true;
  return s;
}

TEST(HandoffStateTest, StateRoundTrip) {
  const HandoffState s = SampleState();
  auto back = HandoffStateFromJson(HandoffStateToJson(s));
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(back->mountpoint, s.mountpoint);
  EXPECT_EQ(back->init, s.init);
  EXPECT_EQ(back->reference, s.reference);
  EXPECT_EQ(back->manifest_media_type, s.manifest_media_type);
  EXPECT_EQ(back->manifest, s.manifest);
  EXPECT_TRUE(back->from_local_store);
}

TEST(HandoffStateTest, StateRefusals) {
  for (const char* bad : {"", "[]", "{}", R"({"hoist_handoff":2})", "{\"hoist_handoff\":1}",
                          R"({"hoist_handoff":1,"mountpoint":"rel","init":"","reference":"",)"
                          R"("manifest_media_type":"","manifest":""})",
                          R"({"hoist_handoff":1,"mountpoint":"/m","init":"!!","reference":"",)"
                          R"("manifest_media_type":"","manifest":""})"}) {
    auto r = HandoffStateFromJson(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code(), EINVAL) << bad;
    EXPECT_NE(r.error().message().find("handoff state"), std::string::npos) << r.error().message();
  }
}

TEST(HandoffStateTest, MemfdIsSealed) {
  auto fd = WriteHandoffMemfd(SampleState());
  ASSERT_TRUE(fd.has_value()) << fd.error().message();
  EXPECT_LT(::write(fd->get(), "x", 1), 0) << "the state is written once";
  auto back = ReadHandoffMemfd(fd->get());
  ASSERT_TRUE(back.has_value()) << back.error().message();
  EXPECT_EQ(back->manifest, SampleState().manifest);
}

}  // namespace
}  // namespace hoist
