/* -----------------------------------------------------------------------------
 * Copyright (c) 2020 Advanced Micro Devices, Inc. All Rights Reserved.
 * See 'LICENSE' in the project root for license information.
 * -------------------------------------------------------------------------- */
#pragma once

#if !defined(__HIP_CPU_RT__)
    #error Private HIP-CPU RT implementation headers must not be included directly.
#endif

#include "grid_launch.hpp"
#include "tile.hpp"
#include "types.hpp"

#include <cstdint>

namespace hip
{
    namespace detail
    {
        // BEGIN CLASS COORDINATES
        template<Dim3 (*fn)() noexcept>
        class Coordinates final {
            // IMPLEMENTATION - NESTED TYPES
            struct X final {
                __forceinline__
                constexpr
                operator std::uint32_t() const noexcept { return fn().x; }
            };
            struct Y final {
                __forceinline__
                constexpr
                operator std::uint32_t() const noexcept { return fn().y; }
            };
            struct Z final {
                __forceinline__
                constexpr
                operator std::uint32_t() const noexcept { return fn().z; }
            };
        public:
            inline static constexpr X x{};
            inline static constexpr Y y{};
            inline static constexpr Z z{};
        };
        // END CLASS COORDINATES

        struct BDim final {
            __forceinline__
            static
            Dim3 call() noexcept
            {
                return dimensions(Tile::this_tile());
            }
        };
        struct BIdx final {
            __forceinline__
            static
            Dim3 call() noexcept
            {
                return index(Tile::this_tile());
            }
        };
        struct GDim final {
            __forceinline__
            static
            Dim3 call() noexcept
            {
                return tile_count(domain(Tile::this_tile()));
            }
        };
        // ppt: when set, fiber f of a block runs thread count - 1 - f, so between two barriers
        // the block's threads run from the last to the first (a missing barrier then shows when
        // a higher thread reads a lower thread's write, the case forward order cannot see).
        inline bool reverse_thread_order{false};

        // The fiber that runs linear thread index `thread` of a block of `count` threads.
        inline
        std::uint32_t fiber_of_thread(std::uint32_t thread, std::uint32_t count) noexcept
        {
            return reverse_thread_order ? count - 1u - thread : thread;
        }

        struct TIdx final {
            __forceinline__
            static
            Dim3 call() noexcept
            {   // TODO: redo.
                // ppt: CUDA's linear thread order (x fastest, then y, then z), so that
                // warps are the runs of 32 consecutive linear indices as on a GPU.
                const auto& dims{dimensions(Tile::this_tile())};
                const auto linear{
                    fiber_of_thread(id(Fiber::this_fiber()), count(dims))};

                return Dim3{
                    linear % dims.x,
                    linear / dims.x % dims.y,
                    linear / (dims.x * dims.y)};
            }
        };

        using Block_dim = Coordinates<&BDim::call>;
        using Block_idx = Coordinates<&BIdx::call>;
        using Grid_dim = Coordinates<&GDim::call>;
        using Thread_idx = Coordinates<&TIdx::call>;
    } // Namespace hip::detail.
} // Namespace hip.