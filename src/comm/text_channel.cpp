#include "comm/text_channel.h"

#include <chrono>
#include <thread>

#include "util/check.h"

namespace bs {

TextChannel::TextChannel(MPI_Comm world) : comm_(world) {}

TextChannel::~TextChannel() {
  try {
    drain();
  } catch (...) {
  }
}

void TextChannel::send(Tag tag, const std::string& text) {
  // Drop the sends rank 0 has already taken, keep the rest alive: MPI reads
  // the buffer until the request completes.
  for (auto it = pending_.begin(); it != pending_.end();) {
    int done = 0;
    BS_MPI_CHECK(MPI_Test(&it->req, &done, MPI_STATUS_IGNORE));
    it = done ? pending_.erase(it) : std::next(it);
  }
  pending_.push_back({text, MPI_REQUEST_NULL});
  auto& p = pending_.back();
  BS_MPI_CHECK(MPI_Isend(p.text.data(), static_cast<int>(p.text.size()), MPI_CHAR, 0, tag, comm_, &p.req));
}

std::pair<int, std::string> TextChannel::receive(const MPI_Status& st) {
  int len = 0;
  BS_MPI_CHECK(MPI_Get_count(&st, MPI_CHAR, &len));
  std::string text(static_cast<size_t>(len), '\0');
  BS_MPI_CHECK(MPI_Recv(text.data(), len, MPI_CHAR, st.MPI_SOURCE, st.MPI_TAG, comm_, MPI_STATUS_IGNORE));
  return {st.MPI_TAG, text};
}

std::vector<std::pair<int, std::string>> TextChannel::poll() {
  std::vector<std::pair<int, std::string>> out;
  for (;;) {
    int flag = 0;
    MPI_Status st;
    BS_MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm_, &flag, &st));
    if (!flag) break;
    if (st.MPI_TAG != kProgress && st.MPI_TAG != kRunDone && st.MPI_TAG != kGroupDone) break;
    out.push_back(receive(st));
  }
  return out;
}

std::pair<int, std::string> TextChannel::wait() {
  // Iprobe and a short sleep, not MPI_Probe: Open MPI busy-polls inside a
  // blocking probe, and rank 0 waiting here would take a core from the groups
  // still training on its node.
  for (;;) {
    int flag = 0;
    MPI_Status st;
    BS_MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm_, &flag, &st));
    if (flag && (st.MPI_TAG == kProgress || st.MPI_TAG == kRunDone || st.MPI_TAG == kGroupDone)) return receive(st);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void TextChannel::drain() {
  for (auto& p : pending_) BS_MPI_CHECK(MPI_Wait(&p.req, MPI_STATUS_IGNORE));
  pending_.clear();
}

}  // namespace bs
