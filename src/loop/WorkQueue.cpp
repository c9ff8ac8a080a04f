#include "loop/WorkQueue.h"

#include <memory>

namespace monocri::loop {

namespace {

struct WorkRequest {
  uv_work_t req{};
  Loop* loop;
  std::string_view label;
  std::function<void()> work;
  std::function<void()> done;
};

}  // namespace

int queueWork(Loop& loop, std::string_view label, std::function<void()> work,
              std::function<void()> done) {
  auto* request = new WorkRequest{{}, &loop, label, std::move(work), std::move(done)};
  request->req.data = request;
  int rc = uv_queue_work(
      loop.raw(), &request->req,
      [](uv_work_t* req) { static_cast<WorkRequest*>(req->data)->work(); },
      [](uv_work_t* req, int) {
        std::unique_ptr<WorkRequest> request(static_cast<WorkRequest*>(req->data));
        Loop::Activity activity(*request->loop, request->label);
        request->work = nullptr;  // free the worker's closure on the loop thread
        if (request->done) request->done();
      });
  if (rc != 0) delete request;
  return rc;
}

}  // namespace monocri::loop
