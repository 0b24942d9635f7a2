"""The ffmpeg argv of each case in argv_cases, as the code before issue 13 made it.

Captured once from the string-editing ``job_argv`` (labels renamed by
``argv_cases.normalise``); do not regenerate these from the new code.  Changed
since, by hand (issue 15): VP9's keyframe interval is 2 seconds unless ``gop`` is
given (``-g 50`` at 25 fps), and VP9's ``-keyint_min`` is its ``-g``.
"""

EXPECTED = {
    "one_source": [
        "/opt/ffmpeg/bin/ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-y", "-loglevel",
        "error", "-progress", "pipe:1", "-f", "image2", "-framerate", "25", "-start_number", "0",
        "-i", "/work/jobs/j/frames/s00000/%08d.png", "-filter_complex",
        "[0:v]scale=64:48:force_original_aspect_ratio=decrease,"
        "pad=64:48:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,"
        "format=rgb24[L0];[L0]setpts=N/(25*TB)[L1];[L1]scale=out_color_matrix=bt709:out_range"
        "=tv,format=yuv420p[L2]",
        "-map", "[L2]", "-r", "25", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "medium",
        "-crf", "23", "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
        "-color_range", "tv", "-movflags", "+faststart", "-f", "mp4", "/work/jobs/j/partial.0.out",
    ],
    "several_segments": [
        "/opt/ffmpeg/bin/ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-y", "-loglevel",
        "error", "-progress", "pipe:1", "-f", "image2", "-framerate", "30000/1001",
        "-start_number", "0", "-i", "/work/jobs/j/frames/s00000/%08d.png", "-f", "image2",
        "-framerate", "30000/1001", "-start_number", "0", "-i",
        "/work/jobs/j/frames/s00001/%08d.jpg", "-f", "image2", "-framerate", "30000/1001",
        "-start_number", "0", "-i", "/work/jobs/j/frames/s00002/%08d.png", "-filter_complex",
        "[0:v]scale=100:74:force_original_aspect_ratio=decrease,"
        "pad=100:74:(ow-iw)/2:(oh-ih)/2:color=0x336699,setsar=1,"
        "format=rgb24[L0];[1:v]scale=100:74:force_original_aspect_ratio=decrease,"
        "pad=100:74:(ow-iw)/2:(oh-ih)/2:color=0x336699,setsar=1,"
        "format=rgb24[L1];[2:v]scale=100:74:force_original_aspect_ratio=decrease,"
        "pad=100:74:(ow-iw)/2:(oh-ih)/2:color=0x336699,setsar=1,"
        "format=rgb24[L2];[L0][L1][L2]concat=n=3:v=1:a=0,setpts=N/(30000/1001*TB),"
        "split=2[L3][L4];[L3]scale=out_color_matrix=bt709:out_range=tv,"
        "format=yuv444p[L5];[L4]scale=50:36:force_original_aspect_ratio=increase,crop=50:36,"
        "setsar=1,scale=out_color_matrix=bt709:out_range=tv,format=yuv420p[L6]",
        "-map", "[L5]", "-r", "30000/1001", "-c:v", "libvpx-vp9", "-pix_fmt", "yuv444p", "-row-mt",
        "1", "-deadline", "good", "-cpu-used", "6", "-b:v", "1000000", "-g", "12",
        "-keyint_min", "12", "-colorspace",
        "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv", "-f",
        "webm", "/work/jobs/j/partial.0.out", "-map", "[L6]", "-r", "30000/1001", "-c:v",
        "libx264", "-pix_fmt", "yuv420p", "-preset", "fast", "-crf", "30", "-colorspace", "bt709",
        "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv", "-movflags",
        "+faststart", "-f", "mp4", "/work/jobs/j/partial.1.out",
    ],
    "grid_with_labels": [
        "/opt/ffmpeg/bin/ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-y", "-loglevel",
        "error", "-progress", "pipe:1", "-f", "image2", "-framerate", "25", "-start_number", "0",
        "-i", "/work/jobs/j/frames/s00000/%08d.png", "-f", "image2", "-framerate", "25",
        "-start_number", "0", "-i", "/work/jobs/j/frames/s00001/%08d.png", "-f", "image2",
        "-framerate", "25", "-start_number", "0", "-i", "/work/jobs/j/frames/s00002/%08d.png",
        "-filter_complex",
        "[0:v]scale=64:48:force_original_aspect_ratio=decrease,"
        "pad=64:48:(ow-iw)/2:(oh-ih)/2:color=white,setsar=1,"
        "format=rgb24[L0];[L0]setpts=N/(25*TB),tpad=stop_mode=clone:stop=2,"
        "drawtext=fontfile=fonts/Roboto-Regular.ttf:textfile=label-0.txt:expansion=none:x=8:y"
        "=8:fontsize=14:fontcolor=white:box=1:boxcolor=black@0.55:boxborderw=4[L1];[1:v]scale"
        "=64:48:force_original_aspect_ratio=decrease,"
        "pad=64:48:(ow-iw)/2:(oh-ih)/2:color=white,setsar=1,"
        "format=rgb24[L2];[L2]setpts=N/(25*TB)[L3];[2:v]scale=64:48:force_original_aspect_rat"
        "io=decrease,pad=64:48:(ow-iw)/2:(oh-ih)/2:color=white,setsar=1,"
        "format=rgb24[L4];[L4]setpts=N/(25*TB),tpad=stop_mode=clone:stop=1,"
        "drawtext=fontfile=fonts/Roboto-Regular.ttf:textfile=label-2.txt:expansion=none:x=8:y"
        "=8:fontsize=14:fontcolor=white:box=1:boxcolor=black@0.55:boxborderw=4[L5];color=c=wh"
        "ite:s=132x100:r=25,trim=end_frame=4,setpts=N/(25*TB),"
        "format=rgb24[L6];[L6][L1]overlay=x=0:y=0:format=rgb:eof_action=repeat[L7];[L7][L3]ov"
        "erlay=x=68:y=0:format=rgb:eof_action=repeat[L8];[L8][L5]overlay=x=0:y=52:format=rgb:"
        "eof_action=repeat,format=rgb24,"
        "drawtext=fontfile=fonts/Roboto-Regular.ttf:textfile=frame-number.txt:x=w-tw-8:y=8:fo"
        "ntsize=14:fontcolor=white:box=1:boxcolor=black@0.55:boxborderw=4[L9];[L9]scale=out_c"
        "olor_matrix=bt709:out_range=tv,format=yuv420p[L10]",
        "-map", "[L10]", "-r", "25", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "medium",
        "-crf", "23", "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
        "-color_range", "tv", "-movflags", "+faststart", "-f", "mp4", "/work/jobs/j/partial.0.out",
    ],
    "regions_by_z": [
        "/opt/ffmpeg/bin/ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-y", "-loglevel",
        "error", "-progress", "pipe:1", "-f", "image2", "-framerate", "25", "-start_number", "0",
        "-i", "/work/jobs/j/frames/s00000/%08d.png", "-f", "image2", "-framerate", "25",
        "-start_number", "0", "-i", "/work/jobs/j/frames/s00001/%08d.png", "-f", "image2",
        "-framerate", "25", "-start_number", "0", "-i", "/work/jobs/j/frames/s00002/%08d.jpg",
        "-filter_complex",
        "[0:v]scale=80:60:force_original_aspect_ratio=decrease,"
        "pad=80:60:(ow-iw)/2:(oh-ih)/2:color=0x204060,setsar=1,"
        "format=rgb24[L0];[L0]setpts=N/(25*TB),"
        "drawtext=fontfile=fonts/Roboto-Regular.ttf:textfile=label-0.txt:expansion=none:x=8:y"
        "=8:fontsize=12:fontcolor=white:box=1:boxcolor=black@0.55:boxborderw=4[L1];[1:v]scale"
        "=120:90,setsar=1,format=rgb24[L2];[2:v]scale=120:90,setsar=1,"
        "format=rgb24[L3];[L2][L3]concat=n=2:v=1:a=0,"
        "setpts=N/(25*TB)[L4];color=c=0x204060:s=200x100:r=25,trim=end_frame=3,"
        "setpts=N/(25*TB),"
        "format=rgb24[L5];[L5][L4]overlay=x=0:y=0:format=rgb:eof_action=repeat[L6];[L6][L1]ov"
        "erlay=x=60:y=20:format=rgb:eof_action=repeat,format=rgb24,"
        "split=2[L7][L8];[L7]scale=100:50:force_original_aspect_ratio=decrease,"
        "pad=100:50:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,"
        "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p[L9];[L8]select='eq(n\\,"
        "0)'[L10]",
        "-map", "[L9]", "-r", "25", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "medium",
        "-crf", "23", "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
        "-color_range", "tv", "-movflags", "+faststart", "-f", "mp4", "/work/jobs/j/partial.0.out",
        "-map", "[L10]", "-c:v", "mjpeg", "-q:v", "2", "-fps_mode", "passthrough", "-update", "1",
        "-f", "image2", "/work/jobs/j/partial.1.out",
    ],
    "several_outputs": [
        "/opt/ffmpeg/bin/ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-y", "-loglevel",
        "error", "-progress", "pipe:1", "-f", "image2", "-framerate", "25", "-start_number", "0",
        "-i", "/work/jobs/j/frames/s00000/%08d.png", "-filter_complex",
        "[0:v]scale=320:240:force_original_aspect_ratio=decrease,"
        "pad=320:240:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,"
        "format=rgb24[L0];[L0]setpts=N/(25*TB),"
        "split=5[L1][L2][L3][L4][L5];[L1]scale=out_color_matrix=bt709:out_range=tv,"
        "format=yuv420p[L6];[L2]scale=160:120:force_original_aspect_ratio=decrease,"
        "pad=160:120:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,"
        "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p[L7];[L3]select='eq(n\\,"
        "0)+eq(n\\,10)'[L8];[L4]split[L9][L10];[L9]select='eq(n\\,0)+eq(n\\,4)+eq(n\\,8)+eq(n\\,"
        "11)+eq(n\\,15)+eq(n\\,19)',scale=80:60:force_original_aspect_ratio=decrease,"
        "pad=80:60:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,"
        "tile=3x2[L11];[L10]trim=end_frame=1,"
        "scale=240:120:force_original_aspect_ratio=decrease,"
        "pad=240:120:(ow-iw)/2:(oh-ih)/2:color=black,"
        "setsar=1[L12];[L12][L11]concat=n=2:v=1:a=0,setpts=N[L13];[L5]fps=10,"
        "scale=100:74:force_original_aspect_ratio=decrease,"
        "pad=100:74:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,"
        "split[L14][L15];[L14]palettegen=stats_mode=single[L16];[L15][L16]paletteuse=new=1[L1"
        "7]",
        "-map", "[L6]", "-r", "25", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "medium",
        "-crf", "20", "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
        "-color_range", "tv", "-movflags", "+faststart", "-f", "mp4", "/work/jobs/j/partial.0.out",
        "-map", "[L7]", "-r", "25", "-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p", "-row-mt", "1",
        "-deadline", "good", "-cpu-used", "8", "-crf", "32", "-b:v", "0", "-g", "50",
        "-keyint_min", "50", "-colorspace", "bt709",
        "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv", "-f", "webm",
        "/work/jobs/j/partial.1.out", "-map", "[L8]", "-c:v", "png", "-fps_mode", "passthrough",
        "-update", "1", "-f", "image2", "/work/jobs/j/partial.2.out", "-map", "[L13]", "-c:v",
        "mjpeg", "-q:v", "2", "-fps_mode", "passthrough", "-update", "1", "-f", "image2",
        "/work/jobs/j/partial.3.out", "-map", "[L17]", "-c:v", "gif", "-loop", "0", "-f", "gif",
        "/work/jobs/j/partial.4.out",
    ],
    "stills_only_old_ffmpeg": [
        "/opt/ffmpeg/bin/ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-y", "-loglevel",
        "error", "-progress", "pipe:1", "-vsync", "0", "-f", "image2", "-framerate", "25",
        "-start_number", "0", "-i", "/work/jobs/j/frames/s00000/%08d.png", "-filter_complex",
        "[0:v]scale=64:48:force_original_aspect_ratio=decrease,"
        "pad=64:48:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,"
        "format=rgb24[L0];[L0]setpts=N/(25*TB),"
        "split=4[L1][L2][L3][L4];[L4]null[L5];[L1]select='eq(n\\,0)+eq(n\\,"
        "2)'[L6];[L2]split[L7][L8];[L7]select='eq(n\\,0)+eq(n\\,1)+eq(n\\,3)+eq(n\\,4)',"
        "scale=160:120:force_original_aspect_ratio=increase,crop=160:120,setsar=1,"
        "tile=4x1[L9];[L8]trim=end_frame=1,"
        "scale=640:120:force_original_aspect_ratio=increase,crop=640:120,"
        "setsar=1[L10];[L10][L9]concat=n=2:v=1:a=0,setpts=N[L11];[L3]null,"
        "split[L12][L13];[L12]palettegen=stats_mode=single[L14];[L13][L14]paletteuse=new=1[L1"
        "5]",
        "-map", "[L5]", "-c:v", "wrapped_avframe", "-f", "null", "-", "-map", "[L6]", "-c:v",
        "mjpeg", "-q:v", "2", "-update", "1", "-f", "image2", "/work/jobs/j/partial.0.out", "-map",
        "[L11]", "-c:v", "mjpeg", "-q:v", "2", "-update", "1", "-f", "image2",
        "/work/jobs/j/partial.1.out", "-map", "[L15]", "-c:v", "gif", "-loop", "-1", "-f", "gif",
        "/work/jobs/j/partial.2.out",
    ],
    "burn_in": [
        "/opt/ffmpeg/bin/ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-y", "-loglevel",
        "error", "-progress", "pipe:1", "-f", "image2", "-framerate", "25", "-start_number", "0",
        "-i", "/work/jobs/j/frames/s00000/%08d.png", "-filter_complex",
        "[0:v]scale=96:64:force_original_aspect_ratio=decrease,"
        "pad=96:64:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,"
        "format=rgb24[L0];[L0]setpts=N/(25*TB),"
        "drawtext=fontfile=fonts/Roboto-Regular.ttf:textfile=frame-number.txt:x=w-tw-8:y=h-th"
        "-8:fontsize=12:fontcolor=white:box=1:boxcolor=black@0.55:boxborderw=4,"
        "subtitles=filenames.ass:fontsdir=fonts[L1];[L1]scale=out_color_matrix=bt709:out_rang"
        "e=tv,format=yuv420p[L2]",
        "-map", "[L2]", "-r", "25", "-c:v", "libsvtav1", "-pix_fmt", "yuv420p", "-preset", "8",
        "-crf", "40", "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
        "-color_range", "tv", "-f", "webm", "/work/jobs/j/partial.0.out",
    ],
}
