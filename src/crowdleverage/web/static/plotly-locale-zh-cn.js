/* plotly.js zh-CN locale for the dashboard (written for this project, served locally: no CDN).
   Axis dates read 2016年1月 / 1月5日; the mode bar is hidden on every chart, its few tips are
   translated anyway. Registered by base.html before any chart is drawn. */
(function () {
  if (typeof Plotly === 'undefined') return;
  Plotly.register({
    moduleType: 'locale',
    name: 'zh-CN',
    dictionary: {
      'Autoscale': '自动缩放', 'Zoom': '缩放', 'Pan': '平移', 'Zoom in': '放大', 'Zoom out': '缩小',
      'Reset axes': '重置坐标轴', 'Download plot as a png': '下载为 PNG',
      'Double-click to zoom back out': '双击还原', 'Box Select': '框选', 'Lasso Select': '套索选择',
      'Show closest data on hover': '悬停显示最近数据', 'Compare data on hover': '悬停比较数据'
    },
    format: {
      days: ['星期日', '星期一', '星期二', '星期三', '星期四', '星期五', '星期六'],
      shortDays: ['周日', '周一', '周二', '周三', '周四', '周五', '周六'],
      months: ['1月', '2月', '3月', '4月', '5月', '6月', '7月', '8月', '9月', '10月', '11月', '12月'],
      shortMonths: ['1月', '2月', '3月', '4月', '5月', '6月', '7月', '8月', '9月', '10月', '11月', '12月'],
      date: '%Y-%m-%d',
      decimal: '.',
      thousands: ','
    }
  });
})();
