// ThreadSanitizer shim: GCC 12's TSan does not intercept C11 <threads.h>, which Debian's librdkafka
// uses for its threads, mutexes and condition variables. Linked into executables of the tsan
// preset only, these definitions interpose glibc's and forward to the pthread calls TSan sees, so
// librdkafka's threads are known to TSan and its locks order memory for it.
#include <pthread.h>
#include <threads.h>

#include <cerrno>
#include <cstdint>

namespace {

struct start_args {
    thrd_start_t func;
    void* arg;
};

void* trampoline(void* raw) {
    const start_args args = *static_cast<start_args*>(raw);
    delete static_cast<start_args*>(raw);
    return reinterpret_cast<void*>(static_cast<std::intptr_t>(args.func(args.arg)));
}

int to_c11(int rc) {
    switch (rc) {
        case 0:
            return thrd_success;
        case ETIMEDOUT:
            return thrd_timedout;
        case EBUSY:
            return thrd_busy;
        case ENOMEM:
            return thrd_nomem;
        default:
            return thrd_error;
    }
}

pthread_mutex_t* native(mtx_t* m) {
    return reinterpret_cast<pthread_mutex_t*>(m);
}
pthread_cond_t* native(cnd_t* c) {
    return reinterpret_cast<pthread_cond_t*>(c);
}

}  // namespace

extern "C" {

int thrd_create(thrd_t* thread, thrd_start_t func, void* arg) {
    auto* args = new start_args{func, arg};
    const int rc = pthread_create(thread, nullptr, trampoline, args);
    if (rc != 0) delete args;
    return to_c11(rc);
}

int thrd_join(thrd_t thread, int* result) {
    void* value = nullptr;
    const int rc = pthread_join(thread, &value);
    if (rc == 0 && result) *result = static_cast<int>(reinterpret_cast<std::intptr_t>(value));
    return to_c11(rc);
}

int mtx_init(mtx_t* m, int type) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    if (type & mtx_recursive) pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    const int rc = pthread_mutex_init(native(m), &attr);
    pthread_mutexattr_destroy(&attr);
    return to_c11(rc);
}
int mtx_lock(mtx_t* m) {
    return to_c11(pthread_mutex_lock(native(m)));
}
int mtx_trylock(mtx_t* m) {
    return to_c11(pthread_mutex_trylock(native(m)));
}
int mtx_timedlock(mtx_t* __restrict m, const struct timespec* __restrict at) {
    return to_c11(pthread_mutex_timedlock(native(m), at));
}
int mtx_unlock(mtx_t* m) {
    return to_c11(pthread_mutex_unlock(native(m)));
}
void mtx_destroy(mtx_t* m) {
    pthread_mutex_destroy(native(m));
}

int cnd_init(cnd_t* c) {
    return to_c11(pthread_cond_init(native(c), nullptr));
}
int cnd_signal(cnd_t* c) {
    return to_c11(pthread_cond_signal(native(c)));
}
int cnd_broadcast(cnd_t* c) {
    return to_c11(pthread_cond_broadcast(native(c)));
}
int cnd_wait(cnd_t* c, mtx_t* m) {
    return to_c11(pthread_cond_wait(native(c), native(m)));
}
int cnd_timedwait(cnd_t* __restrict c, mtx_t* __restrict m, const struct timespec* __restrict at) {
    return to_c11(pthread_cond_timedwait(native(c), native(m), at));
}
void cnd_destroy(cnd_t* c) {
    pthread_cond_destroy(native(c));
}

}  // extern "C"
